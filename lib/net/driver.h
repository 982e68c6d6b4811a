// The Boost.Asio edge that runs one protocol core (proto/core.h) on real
// sockets, for every UDP tool (cm-mcast, cm-leader): a UDP socket per joined
// multicast group (bound to the group's address and port, joined on one
// interface; the first from the config, more by Effects::groups), a UDP
// unicast socket (also the source of every datagram we send, multicast
// included), and TCP on the unicast port number for Transport::kStream
// messages (each framed by a 4-byte little-endian length: the one stream
// framing). Transport::kReport messages are handed to the tool's edge
// (RunHooks::report; cm-leader POSTs them to the CCM's HTTP server).
// Asio stays inside driver.cc; this header is free of it.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "proto/core.h"
#include "util/status.h"

namespace cm::net {

struct DriverConfig {
  proto::Address group;          // ip 0: no group (unicast only)
  uint32_t iface = 0x7f000001;   // interface address for the join and for sending multicast (host order)
  bool loop = true;              // IP_MULTICAST_LOOP (needed for several processes on one host)
  int ttl = 1;
  int rcvbuf = 16 << 20;         // SO_RCVBUF asked for; a warning when the kernel caps it
  int sndbuf = 4 << 20;
  uint16_t unicast_port = 0;     // 0: any free port (the same number is used for TCP)
};

// Type-erased core, so the driver is not a template.
class CoreHandle {
 public:
  virtual ~CoreHandle() = default;
  virtual void Start(proto::Micros now, proto::Effects* out) = 0;
  virtual void OnDatagram(proto::Micros now, const proto::Address& from, std::string_view bytes,
                          proto::Effects* out) = 0;
  virtual void OnTimer(proto::Micros now, proto::Effects* out) = 0;
  // How long the next datagrams waited in the socket's receive queue before
  // this process read them (the kernel's receive stamp; 0: unknown). Cores
  // that measure one-way delay (cm-mcast's receiver) subtract it, so a
  // process that was not scheduled for a while is not taken for a queue in
  // the network. Others ignore it.
  virtual void SetQueued(proto::Micros) {}
};

template <proto::Core C>
class CoreRef : public CoreHandle {
 public:
  explicit CoreRef(C* c) : c_(c) {}
  void Start(proto::Micros now, proto::Effects* out) override { c_->Start(now, out); }
  void OnDatagram(proto::Micros now, const proto::Address& from, std::string_view bytes,
                  proto::Effects* out) override {
    c_->OnDatagram(now, from, bytes, out);
  }
  void OnTimer(proto::Micros now, proto::Effects* out) override { c_->OnTimer(now, out); }
  void SetQueued(proto::Micros waited) override {
    if constexpr (requires { c_->set_queued(waited); }) c_->set_queued(waited);
  }

 private:
  C* c_;
};

struct DriverStats {
  uint64_t datagrams_in = 0, datagrams_out = 0, bytes_out = 0, send_errors = 0, streams_out = 0, streams_in = 0;
  uint64_t reports_out = 0, report_errors = 0;  // Transport::kReport: handed to hooks.report / dropped without one
  uint64_t group_errors = 0;                    // a join asked by Effects::groups that failed
};

// Why Run returned.
enum class RunEnd : uint8_t {
  kDone,         // done() became true
  kInterrupted,  // SIGINT or SIGTERM (after on_signal ran)
};

// What Run calls besides the core, all on the loop thread.
struct RunHooks {
  std::function<bool()> done;                       // checked after every call into the core; null: never
  std::function<void(const proto::Effects&)> after;  // sees every call's effects (events, for logs and progress)
  std::function<void()> tick;                        // about every 200 ms
  // Once, on SIGINT/SIGTERM, before Run returns kInterrupted: may hand the
  // core a last event with Call() (e.g. a leader resigns); its sends go out.
  std::function<void()> on_signal;
  // Every Transport::kReport send (the core's report to a collector that is
  // not a core); null: such sends are dropped (counted in report_errors).
  // Must not block: the edge queues the delivery elsewhere.
  std::function<void(const proto::Send&)> report;
};

class Driver {
 public:
  static Result<std::unique_ptr<Driver>> Open(const DriverConfig& cfg);
  ~Driver();

  // Our unicast address (interface address, port): what peers see as `from`.
  proto::Address local() const;
  // Warnings from Open (e.g. a capped receive buffer), one line each.
  const std::vector<std::string>& warnings() const;

  // Runs the core until hooks.done() is true or SIGINT/SIGTERM arrives. A
  // socket error does not end it: a datagram that cannot be sent is counted
  // (stats), a broken stream is reopened by the next message to that peer.
  // Queued stream messages get up to 2 s to leave before Run returns.
  RunEnd Run(CoreHandle& core, const RunHooks& hooks);
  const DriverStats& stats() const;
  // The clock the core sees (microseconds since Open), also between Runs.
  proto::Micros now() const;

  // Calls f(now, effects) and applies the effects as for any event (sends,
  // wake-up, after()). Only from tick() or on_signal() during Run (the loop
  // thread, outside any other core call). f calls one core entry point that, like every
  // entry point, leaves the core's next wake-up in out->wake_at (kNever
  // cancels it). Used to hand a core something new from outside, e.g. a
  // want list re-read from its file.
  void Call(const std::function<void(proto::Micros now, proto::Effects* out)>& f);

 private:
  struct Impl;
  explicit Driver(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Current monotonic time in microseconds (the driver's clock).
proto::Micros MonotonicMicros();

}  // namespace cm::net
