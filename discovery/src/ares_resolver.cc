#include "replboot/discovery/ares_resolver.h"

#include <ares.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/asio/append.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <utility>

#include "replboot/base/log.h"

namespace replboot::discovery {

namespace asio = boost::asio;
using asio::ip::address;

namespace {

constexpr int kClassIn = 1;   // ns_c_in
constexpr int kTypeSrv = 33;  // ns_t_srv

// ares_library_init is process-global and not thread-safe; do it once.
int InitAresLibrary() {
  static std::once_flag once;
  static int status = ARES_SUCCESS;
  std::call_once(once, [] { status = ares_library_init(ARES_LIB_INIT_ALL); });
  return status;
}

std::string AresServersText(ares_channel channel) {
  ares_addr_port_node* servers = nullptr;
  if (ares_get_servers_ports(channel, &servers) != ARES_SUCCESS) return "(unknown servers)";
  std::string text;
  for (ares_addr_port_node* s = servers; s != nullptr; s = s->next) {
    std::array<char, INET6_ADDRSTRLEN> buf{};
    ares_inet_ntop(s->family, &s->addr, buf.data(), buf.size());
    int port = s->udp_port != 0 ? s->udp_port : 53;
    if (!text.empty()) text += ",";
    text += s->family == AF_INET6 ? fmt::format("[{}]:{}", buf.data(), port)
                                  : fmt::format("{}:{}", buf.data(), port);
  }
  ares_free_data(servers);
  return text.empty() ? "(no servers)" : text;
}

LookupFailure FailureFromAres(int status, std::string_view what, const std::string& name,
                              const std::string& servers) {
  LookupFailure failure;
  std::string_view cause;
  switch (status) {
    case ARES_ENOTFOUND:
      failure.error = LookupError::kNxDomain;
      cause = "NXDOMAIN, no such name";
      break;
    case ARES_ENODATA:
      failure.error = LookupError::kNoData;
      cause = "the name has no such record (NODATA)";
      break;
    case ARES_ESERVFAIL:
      failure.error = LookupError::kServFail;
      cause = "SERVFAIL, the DNS server failed";
      break;
    case ARES_EREFUSED:
      failure.error = LookupError::kRefused;
      cause = "REFUSED by the DNS server";
      break;
    case ARES_ECONNREFUSED:
      failure.error = LookupError::kRefused;
      cause = "the DNS server port is closed (connection refused)";
      break;
    case ARES_ETIMEOUT:
      failure.error = LookupError::kTimeout;
      cause = "no answer from the DNS server (timeout)";
      break;
    case ARES_ECANCELLED:
    case ARES_EDESTRUCTION:
      failure.error = LookupError::kCancelled;
      cause = "cancelled";
      break;
    default:
      failure.error = LookupError::kOther;
      cause = ares_strerror(status);
      break;
  }
  failure.message =
      fmt::format("DNS lookup of {} ({}) failed: {} (servers {})", name, what, cause, servers);
  return failure;
}

}  // namespace


// One c-ares socket. Handlers of its pending waits share it, so that a wait
// completing after c-ares closed the socket (or after the fd number was reused
// for a new socket, which gets a new Socket) finds `closed` set.
struct AresSocket {
  explicit AresSocket(asio::posix::stream_descriptor d) : descriptor(std::move(d)) {}
  asio::posix::stream_descriptor descriptor;
  bool want_read = false;
  bool want_write = false;
  bool read_pending = false;
  bool write_pending = false;
  bool closed = false;
};

struct AresResolver::Impl : std::enable_shared_from_this<AresResolver::Impl> {
  explicit Impl(asio::any_io_executor ex) : executor(std::move(ex)), timer(executor) {}

  asio::any_io_executor executor;
  asio::steady_timer timer;
  ares_channel channel = nullptr;
  std::unordered_map<int, std::shared_ptr<AresSocket>> sockets;
  std::string servers_text;
  bool closed = false;

  static void OnSockState(void* data, ares_socket_t fd, int readable, int writable);
  void SockState(int fd, bool readable, bool writable);
  void ArmRead(const std::shared_ptr<AresSocket>& socket, int fd);
  void ArmWrite(const std::shared_ptr<AresSocket>& socket, int fd);
  void Process(int read_fd, int write_fd);
  void RescheduleTimer();
  void Shutdown();
};

namespace {

// A lookup in flight. c-ares owns one reference (through its `arg`) until it calls
// back; the cancellation slot only holds a weak one. Whichever of "c-ares
// answered" and "the caller cancelled" comes first completes the handler; the
// other finds it gone.
template <typename T>
struct PendingBase {
  virtual ~PendingBase() = default;
  virtual void Complete(Lookup<T> result) = 0;
  std::string name;
  std::string servers;
};

template <typename T, typename Handler>
struct PendingOp final : PendingBase<T> {
  asio::any_io_executor executor;
  std::optional<Handler> handler;
  asio::cancellation_slot slot;

  void Complete(Lookup<T> result) override {
    if (!handler) return;  // already completed by cancellation
    if (slot.is_connected()) slot.clear();
    Post(std::move(result));
  }

  // Called from the slot's own handler, which must not clear the slot it runs in.
  void Abandon() {
    if (!handler) return;
    slot = asio::cancellation_slot();
    LookupFailure failure;
    failure.error = LookupError::kCancelled;
    failure.message = fmt::format("DNS lookup of {} cancelled", this->name);
    Post(tl::unexpected(std::move(failure)));
  }

  // Always through the handler's executor, never inline: the caller may start
  // another lookup or destroy the resolver when it resumes, which must not happen
  // while c-ares is still inside ares_process_fd.
  void Post(Lookup<T> result) {
    Handler h = std::move(*handler);
    handler.reset();
    auto ex = asio::get_associated_executor(h, executor);
    asio::post(ex, asio::append(std::move(h), std::move(result)));
  }
};

template <typename T>
using PendingArg = std::shared_ptr<PendingBase<T>>;

template <typename T, typename Handler>
PendingArg<T>* StartPending(const std::shared_ptr<AresResolver::Impl>& impl, std::string name,
                            Handler handler) {
  auto pending = std::make_shared<PendingOp<T, Handler>>();
  pending->name = std::move(name);
  pending->servers = impl->servers_text;
  pending->executor = impl->executor;
  pending->slot = asio::get_associated_cancellation_slot(handler);
  pending->handler.emplace(std::move(handler));
  if (pending->slot.is_connected()) {
    std::weak_ptr<PendingOp<T, Handler>> weak = pending;
    pending->slot.assign([weak](asio::cancellation_type) {
      if (auto p = weak.lock()) p->Abandon();
    });
  }
  return new PendingArg<T>(std::move(pending));
}

template <typename T>
PendingArg<T> TakePending(void* arg) {
  std::unique_ptr<PendingArg<T>> holder(static_cast<PendingArg<T>*>(arg));
  return std::move(*holder);
}

void OnAddrInfo(void* arg, int status, int /*timeouts*/, ares_addrinfo* info) {
  auto pending = TakePending<std::vector<address>>(arg);
  if (status != ARES_SUCCESS) {
    if (info != nullptr) ares_freeaddrinfo(info);
    pending->Complete(
        tl::unexpected(FailureFromAres(status, "A/AAAA", pending->name, pending->servers)));
    return;
  }
  std::vector<address> v4;
  std::vector<address> v6;
  for (ares_addrinfo_node* node = info != nullptr ? info->nodes : nullptr; node != nullptr;
       node = node->ai_next) {
    if (node->ai_family == AF_INET && node->ai_addr != nullptr) {
      const auto* sin = reinterpret_cast<const sockaddr_in*>(node->ai_addr);
      address a = asio::ip::address_v4(ntohl(sin->sin_addr.s_addr));
      if (std::find(v4.begin(), v4.end(), a) == v4.end()) v4.push_back(a);
    } else if (node->ai_family == AF_INET6 && node->ai_addr != nullptr) {
      const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(node->ai_addr);
      asio::ip::address_v6::bytes_type bytes;
      std::copy_n(sin6->sin6_addr.s6_addr, bytes.size(), bytes.begin());
      address a = asio::ip::address_v6(bytes, sin6->sin6_scope_id);
      if (std::find(v6.begin(), v6.end(), a) == v6.end()) v6.push_back(a);
    }
  }
  if (info != nullptr) ares_freeaddrinfo(info);
  v4.insert(v4.end(), v6.begin(), v6.end());
  if (v4.empty()) {
    pending->Complete(
        tl::unexpected(FailureFromAres(ARES_ENODATA, "A/AAAA", pending->name, pending->servers)));
    return;
  }
  pending->Complete(std::move(v4));
}

void OnSrv(void* arg, int status, int /*timeouts*/, unsigned char* answer, int length) {
  auto pending = TakePending<std::vector<SrvRecord>>(arg);
  if (status != ARES_SUCCESS) {
    pending->Complete(
        tl::unexpected(FailureFromAres(status, "SRV", pending->name, pending->servers)));
    return;
  }
  ares_srv_reply* replies = nullptr;
  int parsed = ares_parse_srv_reply(answer, length, &replies);
  if (parsed != ARES_SUCCESS) {
    pending->Complete(
        tl::unexpected(FailureFromAres(parsed, "SRV", pending->name, pending->servers)));
    return;
  }
  std::vector<SrvRecord> records;
  for (ares_srv_reply* r = replies; r != nullptr; r = r->next) {
    SrvRecord record;
    record.target = r->host != nullptr ? r->host : "";
    if (!record.target.empty() && record.target.back() == '.') record.target.pop_back();
    record.port = r->port;
    record.priority = r->priority;
    record.weight = r->weight;
    records.push_back(std::move(record));
  }
  ares_free_data(replies);
  if (records.empty()) {
    pending->Complete(
        tl::unexpected(FailureFromAres(ARES_ENODATA, "SRV", pending->name, pending->servers)));
    return;
  }
  pending->Complete(std::move(records));
}

}  // namespace

void AresResolver::Impl::OnSockState(void* data, ares_socket_t fd, int readable, int writable) {
  static_cast<Impl*>(data)->SockState(fd, readable != 0, writable != 0);
}

void AresResolver::Impl::SockState(int fd, bool readable, bool writable) {
  auto it = sockets.find(fd);
  if (!readable && !writable) {
    // c-ares is about to close the socket: stop watching it without closing it
    // ourselves (release() deregisters from the reactor and cancels our waits).
    if (it != sockets.end()) {
      it->second->closed = true;
      it->second->descriptor.release();
      sockets.erase(it);
    }
    return;
  }
  if (closed) return;
  if (it == sockets.end()) {
    asio::posix::stream_descriptor descriptor(executor);
    boost::system::error_code ec;
    descriptor.assign(fd, ec);
    if (ec) {
      // The query on this socket will time out through c-ares; say why.
      log::Get("discovery")
          ->error("event=dns_socket_error fd={} error={}", fd, log::Quote(ec.message()));
      return;
    }
    it = sockets.emplace(fd, std::make_shared<AresSocket>(std::move(descriptor))).first;
  }
  auto socket = it->second;
  socket->want_read = readable;
  socket->want_write = writable;
  ArmRead(socket, fd);
  ArmWrite(socket, fd);
}

void AresResolver::Impl::ArmRead(const std::shared_ptr<AresSocket>& socket, int fd) {
  if (closed || socket->closed || !socket->want_read || socket->read_pending) return;
  socket->read_pending = true;
  socket->descriptor.async_wait(
      asio::posix::descriptor_base::wait_read,
      [weak = weak_from_this(), socket, fd](boost::system::error_code ec) {
        socket->read_pending = false;
        auto self = weak.lock();
        if (ec || !self || self->closed || socket->closed) return;
        self->Process(fd, ARES_SOCKET_BAD);
        self->ArmRead(socket, fd);
      });
}

void AresResolver::Impl::ArmWrite(const std::shared_ptr<AresSocket>& socket, int fd) {
  if (closed || socket->closed || !socket->want_write || socket->write_pending) return;
  socket->write_pending = true;
  socket->descriptor.async_wait(
      asio::posix::descriptor_base::wait_write,
      [weak = weak_from_this(), socket, fd](boost::system::error_code ec) {
        socket->write_pending = false;
        auto self = weak.lock();
        if (ec || !self || self->closed || socket->closed) return;
        self->Process(ARES_SOCKET_BAD, fd);
        self->ArmWrite(socket, fd);
      });
}

void AresResolver::Impl::Process(int read_fd, int write_fd) {
  if (closed) return;
  ares_process_fd(channel, read_fd, write_fd);
  RescheduleTimer();
}

void AresResolver::Impl::RescheduleTimer() {
  if (closed) return;
  timeval tv{};
  timeval* next = ares_timeout(channel, nullptr, &tv);
  if (next == nullptr) {  // nothing pending
    timer.cancel();
    return;
  }
  timer.expires_after(std::chrono::seconds(next->tv_sec) +
                      std::chrono::microseconds(next->tv_usec));
  timer.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
    auto self = weak.lock();
    if (ec || !self || self->closed) return;  // rescheduled or shut down
    self->Process(ARES_SOCKET_BAD, ARES_SOCKET_BAD);
  });
}

void AresResolver::Impl::Shutdown() {
  if (closed) return;
  // ares_destroy calls every pending callback with ARES_EDESTRUCTION (each posts
  // kCancelled to its caller) and tells us through OnSockState to drop each socket.
  ares_destroy(channel);
  channel = nullptr;
  closed = true;
  for (auto& [fd, socket] : sockets) {
    socket->closed = true;
    socket->descriptor.release();
  }
  sockets.clear();
  timer.cancel();
}

Result<std::unique_ptr<AresResolver>> AresResolver::Create(asio::any_io_executor executor,
                                                           const AresOptions& options) {
  int status = InitAresLibrary();
  if (status != ARES_SUCCESS) {
    return Error(StatusCode::kInternal, "c-ares library init failed: {}", ares_strerror(status));
  }
  if (options.timeout.count() <= 0 || options.tries <= 0) {
    return Error(StatusCode::kInvalidArgument,
                 "dns timeout ({} ms) and tries ({}) must be positive", options.timeout.count(),
                 options.tries);
  }
  // c-ares quietly falls back to its defaults (127.0.0.1, no search domains) when
  // the file is missing; a wrong path must not turn into "every name is NXDOMAIN".
  if (!options.resolv_conf.empty() && ::access(options.resolv_conf.c_str(), R_OK) != 0) {
    int err = errno;
    return Error(StatusCode::kInvalidArgument, "dns.resolv_conf {}: {}", options.resolv_conf,
                 std::strerror(err));
  }
  auto impl = std::make_shared<Impl>(std::move(executor));
  ares_options ao{};
  int mask = ARES_OPT_FLAGS | ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;
  // Without NOCHECKRESP, c-ares 1.18 answers a SERVFAIL or REFUSED by skipping
  // the server and, with none left, reports ECONNREFUSED: a broken DNS server
  // would look like a closed port. We want the real rcode in the logs; our own
  // retry of the whole lookup covers what the next-server fallback would do.
  ao.flags = ARES_FLAG_NOCHECKRESP;
  ao.sock_state_cb = &Impl::OnSockState;
  ao.sock_state_cb_data = impl.get();
  ao.timeout = static_cast<int>(options.timeout.count());
  ao.tries = options.tries;
  std::string resolv_conf = options.resolv_conf;
  if (!resolv_conf.empty()) {
    mask |= ARES_OPT_RESOLVCONF;
    ao.resolvconf_path = resolv_conf.data();
  }
  status = ares_init_options(&impl->channel, &ao, mask);
  if (status != ARES_SUCCESS) {
    impl->channel = nullptr;
    return Error(StatusCode::kIOError, "cannot set up the DNS resolver from {}: {}",
                 options.resolv_conf, ares_strerror(status));
  }
  if (!options.servers.empty()) {
    std::string csv;
    for (const auto& s : options.servers) {
      if (!csv.empty()) csv += ",";
      csv += s;
    }
    status = ares_set_servers_ports_csv(impl->channel, csv.c_str());
    if (status != ARES_SUCCESS) {
      ares_destroy(impl->channel);
      impl->channel = nullptr;
      return Error(StatusCode::kInvalidArgument,
                   "dns.servers \"{}\": {} (expected host[:port] entries such as 127.0.0.1:5353 or "
                   "[::1]:53)",
                   csv, ares_strerror(status));
    }
  }
  impl->servers_text = AresServersText(impl->channel);
  return std::unique_ptr<AresResolver>(new AresResolver(std::move(impl)));
}

AresResolver::AresResolver(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

AresResolver::~AresResolver() { impl_->Shutdown(); }

const std::string& AresResolver::ServersText() const { return impl_->servers_text; }

void AresResolver::Cancel() {
  if (impl_->closed) return;
  ares_cancel(impl_->channel);
  impl_->RescheduleTimer();
}

asio::awaitable<Lookup<std::vector<address>>> AresResolver::ResolveAddresses(std::string name) {
  using R = Lookup<std::vector<address>>;
  // Not a coroutine itself: returning the operation's awaitable directly keeps
  // the initiation (and its shared_ptr) out of a co_await full-expression, where
  // GCC 12 has been seen to destroy such temporaries twice.
  return asio::async_initiate<decltype(asio::use_awaitable), void(R)>(
      [impl = impl_](auto handler, std::string query_name) {
        auto* arg =
            StartPending<std::vector<address>>(impl, std::move(query_name), std::move(handler));
        if (impl->closed) {
          OnAddrInfo(arg, ARES_EDESTRUCTION, 0, nullptr);
          return;
        }
        ares_addrinfo_hints hints{};
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;  // one node per address instead of one per socket type
        // May call back synchronously (numeric address, /etc/hosts); `arg` is
        // then already freed, so it is not touched again here.
        const std::string name_copy = (*arg)->name;
        ares_getaddrinfo(impl->channel, name_copy.c_str(), nullptr, &hints, &OnAddrInfo, arg);
        impl->RescheduleTimer();
      },
      asio::use_awaitable, std::move(name));
}

asio::awaitable<Lookup<std::vector<SrvRecord>>> AresResolver::ResolveSrv(std::string name) {
  using R = Lookup<std::vector<SrvRecord>>;
  return asio::async_initiate<decltype(asio::use_awaitable), void(R)>(
      [impl = impl_](auto handler, std::string query_name) {
        auto* arg =
            StartPending<std::vector<SrvRecord>>(impl, std::move(query_name), std::move(handler));
        if (impl->closed) {
          OnSrv(arg, ARES_EDESTRUCTION, 0, nullptr, 0);
          return;
        }
        const std::string name_copy = (*arg)->name;
        ares_search(impl->channel, name_copy.c_str(), kClassIn, kTypeSrv, &OnSrv, arg);
        impl->RescheduleTimer();
      },
      asio::use_awaitable, std::move(name));
}

}  // namespace replboot::discovery
