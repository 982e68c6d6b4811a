// The relay's children, each run to its end on the calling thread: cm-apply
// of a serial's spool file, cm-mcast recv into the spool, cm-mcast send of
// the complete file or of a site copy grown from the checked bytes.
#include "pushrun/relay_children.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <thread>

#include "push/held_content.h"
#include "pushrun/fetch.h"
#include "util/file_util.h"
#include "util/json_value.h"
#include "util/log.h"
#include "util/subprocess.h"

namespace cm::pushrun {
namespace {

namespace fs = std::filesystem;

constexpr push::Micros kMirrorPoll = 200 * proto::kMillis;  // the site copy checks for cancellation this often

std::chrono::milliseconds Millis(push::Micros m) { return std::chrono::milliseconds(m / proto::kMillis); }

std::string Iface(const RelayOptions& opts) {
  if (!opts.iface.empty()) return opts.iface;
  std::string host = opts.listen.substr(0, opts.listen.rfind(':'));
  return host == "0.0.0.0" ? "" : host;
}

push::ChildDone Process(const std::vector<std::string>& argv, push::Micros timeout, const std::atomic<bool>* cancel,
                        std::string* out = nullptr) {
  ProcessOptions po;
  po.timeout = Millis(timeout);
  po.cancel = cancel;
  push::ChildDone d;
  auto res = RunProcess(argv, po);
  if (!res.ok()) {
    d.error_line = res.status().message();
    return d;
  }
  d.exit_code = res->exit_code;
  d.error_line = LastLine(res->err);
  if (out) *out = std::move(res->out);
  return d;
}

// The live release after cm-apply's last action: "release" (and its
// "manifest") of the last report line its --json printed that has one (""
// when none says).
std::string LiveRelease(const std::string& out, std::string* manifest) {
  std::string release;
  size_t begin = 0;
  while (begin < out.size()) {
    size_t end = out.find('\n', begin);
    if (end == std::string::npos) end = out.size();
    auto v = ParseJson(std::string_view(out).substr(begin, end - begin));
    if (v.ok() && v->is_object() && (*v)["release"].kind() == JsonValue::Kind::kString) {
      release = v->Str("release");
      *manifest = v->Str("manifest");
    }
    begin = end + 1;
  }
  return release;
}

push::ChildDone Apply(const RelayChildEnv& env, const push::StartChild& c) {
  const RelayOptions& opts = *env.opts;
  if (opts.root.empty()) return push::ChildDone{0, 0};  // receive only
  std::vector<std::string> argv{opts.cm_apply, env.spool_path(c.serial), "--root", opts.root, "-q", "--json",
                                "--pub-key", opts.pub_key};
  if (opts.allow_unsigned) argv.push_back("--allow-unsigned");
  std::string out;
  push::ChildDone d = Process(argv, c.timeout, nullptr, &out);
  d.release = LiveRelease(out, &d.manifest);
  return d;
}

push::ChildDone McastRecv(const RelayChildEnv& env, const push::StartChild& c, const std::atomic<bool>* cancel) {
  const RelayOptions& opts = *env.opts;
  std::vector<std::string> argv{opts.cm_mcast, "recv",     "--group", c.group, "--id", opts.name, "-o",
                                opts.spool,    "--timeout", std::to_string(c.idle_timeout_s), "-q"};
  if (!Iface(opts).empty()) argv.insert(argv.end(), {"--iface", Iface(opts)});
  if (!opts.group_key.empty()) argv.insert(argv.end(), {"--key", opts.group_key});
  push::ChildDone d = Process(argv, c.timeout, cancel);
  auto f = env.fetcher(c.serial);
  f->OpenExisting();
  d.file_complete = f->complete();
  return d;
}

Status Mirror(const RelayChildEnv& env, uint64_t serial, int fd, const std::atomic<bool>* cancel,
              const std::atomic<bool>* sent) {
  std::shared_ptr<push::HeldContent> held = env.fetcher(serial)->held();
  if (!held) return Error(Code::kFailure, "nothing held");
  std::vector<char> buf(1 << 20);
  uint64_t pos = 0;
  const uint64_t size = held->size();
  while (pos < size) {
    if (*env.stopping || *cancel || *sent) return Error(Code::kFailure, "cancelled");
    auto w = held->WaitFor(pos, std::chrono::steady_clock::now() + Millis(kMirrorPoll));
    if (!w.ok()) return w.status();
    if (!*w) continue;
    auto n = held->ReadAt(pos, std::span<char>(buf.data(), buf.size()));
    if (!n.ok()) return n.status();
    for (size_t done = 0; done < *n;) {
      ssize_t k = ::pwrite(fd, buf.data() + done, *n - done, static_cast<off_t>(pos + done));
      if (k < 0 && errno == EINTR) continue;
      if (k < 0) return ErrnoError("site copy", errno);
      done += static_cast<size_t>(k);
    }
    pos += *n;
  }
  return Status::Ok();
}

// cm-mcast send of the complete file or (growing) of a copy in
// <spool>/site/ extended with the checked bytes as they arrive. A copy that
// fails sets `cancel`: the multicast can never complete.
push::ChildDone McastSend(const RelayChildEnv& env, const push::StartChild& c, std::atomic<bool>* cancel) {
  const RelayOptions& opts = *env.opts;
  std::string send_path = env.spool_path(c.serial);
  UniqueFd copy;
  std::thread mirror;
  std::atomic<bool> sent{false};
  if (c.growing) {
    std::error_code ec;
    if (fs::create_directories(opts.spool + "/site", ec)) ::chmod((opts.spool + "/site").c_str(), 0700);
    send_path = opts.spool + "/site/" + std::to_string(c.serial) + ".cma";
    copy = UniqueFd(::open(send_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!copy) return push::ChildDone{0, -1, send_path + ": " + std::strerror(errno)};
    mirror = std::thread([&] {
      Status ms = Mirror(env, c.serial, copy.get(), cancel, &sent);
      if (!ms.ok() && !sent && !*cancel) {
        if (!*env.stopping) log::Warn(opts.name + ": site copy: " + ms.message());
        *cancel = true;
      }
    });
  }
  std::vector<std::string> argv{opts.cm_mcast, "send", send_path, "--group", c.group, "--id", opts.name, "-q"};
  if (c.growing) argv.insert(argv.end(), {"--final-size", std::to_string(c.final_size)});
  if (!Iface(opts).empty()) argv.insert(argv.end(), {"--iface", Iface(opts)});
  if (!opts.mcast_rate.empty()) argv.insert(argv.end(), {"--rate", opts.mcast_rate});
  if (!opts.group_key.empty()) argv.insert(argv.end(), {"--key", opts.group_key});
  argv.push_back("--receivers");
  argv.insert(argv.end(), c.receivers.begin(), c.receivers.end());
  push::ChildDone d = Process(argv, c.timeout, cancel);
  if (mirror.joinable()) {
    sent = true;  // the copy is no longer needed whatever happened
    mirror.join();
    ::unlink(send_path.c_str());
  }
  return d;
}

}  // namespace

push::ChildDone RunRelayChild(const RelayChildEnv& env, const push::StartChild& c, std::atomic<bool>* cancel) {
  switch (c.kind) {
    case push::ChildKind::kApply: return Apply(env, c);
    case push::ChildKind::kMcastSend: return McastSend(env, c, cancel);
    case push::ChildKind::kMcastRecv: return McastRecv(env, c, cancel);
  }
  return {};
}

}  // namespace cm::pushrun
