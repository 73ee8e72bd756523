# replboot on MariaDB 10.11 (Debian 12). replboot is the ENTRYPOINT and PID 1: it renders the
# node's config from its hostname (mysql-N), initializes or clones the datadir, and runs mysqld.
#
#   podman build --network host -t replboot:latest .      (or docker build -t replboot:latest .)
#   podman run --hostname mysql-0 -v mysql-0:/var/lib/mysql \
#     -e REPLBOOT_MYSQL_ROOT_PASSWORD_FILE=... replboot:latest
#
# Without a Docker engine and registry, scripts/podman-setup creates `debian:bookworm` locally with
# debootstrap (see the README); with Docker it is the official image.
ARG BASE_IMAGE=debian:bookworm

# ---- build: compile replboot and find the runtime packages its libraries come from.
FROM ${BASE_IMAGE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config python3 \
      libboost1.81-dev libc-ares-dev libarchive-dev libmariadb-dev libtomlplusplus-dev \
      libcli11-dev libspdlog-dev libfmt-dev libexpected-dev nlohmann-json3-dev libssl-dev \
      libzstd-dev liblz4-dev zlib1g-dev libcurl4-openssl-dev libexpat1-dev libgtest-dev libgmock-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Only the executable: the tests need servers and run outside the image (ctest). RelWithDebInfo
# (-O2), the configuration CI builds and tests, stripped below.
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
 && cmake --build /build --target replboot -j "$(nproc)" \
 && install -D -m 0755 -s /build/daemon/replboot /out/usr/local/bin/replboot
# The Debian packages owning the shared libraries replboot links, so the runtime stage installs
# exactly those (no -dev packages, no compiler). dpkg knows a file by the path its package ships
# (/lib/... or /usr/lib/...; /lib is a symlink to /usr/lib), so each form is tried.
RUN for lib in $(ldd /out/usr/local/bin/replboot | awk '$3 ~ /^\// { print $3 }'); do \
      dir=$(realpath "$(dirname "$lib")"); \
      for path in "$lib" "$dir/$(basename "$lib")" "$(realpath "$lib")" "${dir#/usr}/$(basename "$lib")"; do \
        dpkg -S "$path" 2>/dev/null && break; \
      done | head -1 | grep . || { echo "no Debian package owns $lib" >&2; exit 1; }; \
    done | cut -d: -f1 | sort -u > /out/runtime-packages \
 && cat /out/runtime-packages

# ---- runtime: MariaDB server + mariabackup + replboot.
FROM ${BASE_IMAGE}
# The mysql user and group get fixed ids before mariadb-server creates them, so Kubernetes'
# fsGroup (k8s/statefulset.yaml) can name the group.
RUN groupadd --system --gid 999 mysql \
 && useradd --system --uid 999 --gid mysql --home-dir /var/lib/mysql --no-create-home \
      --shell /usr/sbin/nologin mysql
COPY --from=build /out/runtime-packages /tmp/runtime-packages
# mariadb-server's postinst initializes /var/lib/mysql; that datadir is removed: replboot
# initializes (mysql-0) or clones (mysql-N) its own on the volume.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      mariadb-server mariadb-backup mariadb-client $(cat /tmp/runtime-packages) \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages /var/lib/mysql \
 && install -d -o mysql -g mysql -m 0750 /var/lib/mysql \
 && install -d -o mysql -g mysql -m 0755 /run/mysqld \
 && install -d -m 0755 /etc/replboot
COPY --from=build /out/usr/local/bin/replboot /usr/local/bin/replboot
# Image defaults; Kubernetes mounts its ConfigMap over this file. The datadir is a directory on
# the volume, not the volume's root, so the clone's staging directory next to it is on the same
# filesystem and a fresh volume's lost+found is not mistaken for data.
COPY docker/replboot.toml /etc/replboot/replboot.toml
VOLUME /var/lib/mysql
# mysql, the backup endpoint replicas clone from, HTTP (/health /ready /primary /replica /status)
EXPOSE 3306 3307 8008
# replboot runs as root so it can prepare a fresh volume (chown) and signal mysqld, and starts
# mysqld with --user=mysql (mysql.user): the database server never runs as root. SIGTERM
# (podman/docker stop, pod deletion) shuts mysqld down cleanly within mysql.shutdown_grace.
STOPSIGNAL SIGTERM
ENTRYPOINT ["replboot", "run"]
