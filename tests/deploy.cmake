# Integration tests of what users run: the Kubernetes manifests, the container image and the
# local cluster script (issue 8). Included from the top-level CMakeLists.txt.
replboot_add_integration_test(k8s_manifests ${PROJECT_SOURCE_DIR}/tests/k8s/manifests_test.py
                              LABELS k8s TIMEOUT 300)
# podman-setup (debootstrap on the first run), a two-stage image build that compiles replboot
# (once, shared by both tests), then one container and a three-container cluster: generous.
replboot_add_integration_test(image_podman ${PROJECT_SOURCE_DIR}/tests/image/image_test.py
                              LABELS image TIMEOUT 3600)
replboot_add_integration_test(cluster_script ${PROJECT_SOURCE_DIR}/tests/cluster/cluster_test.py
                              LABELS cluster TIMEOUT 1500)
# Static and quick: the image's build stage installs every library package install-deps does.
add_test(NAME image.build_packages
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/image/build_packages_test.py)
set_tests_properties(image.build_packages PROPERTIES LABELS unit
                     ENVIRONMENT "REPLBOOT_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
