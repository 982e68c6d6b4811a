#include "apply/hooks.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "util/file_util.h"

extern char** environ;

namespace cm::apply {
namespace {

using Clock = std::chrono::steady_clock;

void Keep(std::string* out, const char* p, size_t n) {
  out->append(p, n);
  if (out->size() > kHookOutputMax) out->erase(0, out->size() - kHookOutputMax);
}

// Reads what is there now; false at end of file or on an error.
bool Drain(int fd, std::string* out) {
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      Keep(out, buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return n < 0 && errno == EAGAIN;
  }
}

int StatusToCode(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

std::string HookRun::Outcome(std::chrono::milliseconds timeout) const {
  if (!start_error.empty()) return "cannot run: " + start_error;
  if (timed_out) {
    auto ms = timeout.count();
    return "killed after the " + (ms % 1000 == 0 ? std::to_string(ms / 1000) + " s" : std::to_string(ms) + " ms") +
           " timeout";
  }
  if (exit_code > 128) return "killed by signal " + std::to_string(exit_code - 128);
  return "exit " + std::to_string(exit_code);
}

std::string HookRun::LastLine() const {
  size_t end = output.size();
  while (end > 0) {
    size_t nl = output.rfind('\n', end - 1);
    size_t begin = nl == std::string::npos ? 0 : nl + 1;
    if (end > begin) return output.substr(begin, end - begin);
    if (nl == std::string::npos) break;
    end = nl;
  }
  return {};
}

std::vector<std::string> HookEnvironment(const std::string& name, const SwitchInfo& info) {
  return {"CM_HOOK=" + name,          "CM_ACTION=" + info.action,       "CM_ROOT=" + info.root,
          "CM_RELEASE_FROM=" + info.from, "CM_RELEASE_TO=" + info.to, "CM_TREE=" + info.tree,
          "CM_SERIAL=" + std::to_string(info.serial), "CM_JOB=" + info.job};
}

HookRun RunHook(const std::string& name, const std::vector<std::string>& argv, const SwitchInfo& info,
                std::chrono::milliseconds timeout) {
  HookRun run;
  run.name = name;
  const auto t0 = Clock::now();
  auto finish = [&] {
    run.duration_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
    return run;
  };
  if (argv.empty()) {
    run.start_error = "empty command";
    return finish();
  }
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    run.start_error = std::string("pipe: ") + std::strerror(errno);
    return finish();
  }
  UniqueFd rd(fds[0]), wr(fds[1]);

  // The CM_* variables replace any inherited ones of the same name.
  std::vector<std::string> ours = HookEnvironment(name, info);
  std::vector<char*> envp;
  for (char** e = environ; e && *e; ++e)
    if (std::strncmp(*e, "CM_", 3) != 0) envp.push_back(*e);
  for (auto& e : ours) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, wr.get(), 1);
  posix_spawn_file_actions_adddup2(&fa, wr.get(), 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // Its own process group, so the timeout stops the hook and its children;
  // default signal dispositions and an empty mask whatever ours are.
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attr, 0);
  sigset_t none, defaults;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  sigemptyset(&defaults);
  for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT}) sigaddset(&defaults, sig);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, argv[0].c_str(), &fa, &attr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  wr.reset();
  if (rc != 0) {
    run.start_error = argv[0] + ": " + std::strerror(rc);
    return finish();
  }
  ::fcntl(rd.get(), F_SETFL, O_NONBLOCK);

  const auto deadline = t0 + timeout;
  bool open = true;
  int status = 0;
  for (;;) {
    pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    const auto now = Clock::now();
    if (now >= deadline) {
      run.timed_out = true;
      ::kill(-pid, SIGKILL);
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      break;
    }
    // Poll the output (or just sleep once it is closed) for at most 20 ms, so
    // the exit is seen promptly even when a child of the hook keeps the pipe.
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count();
    int wait_ms = static_cast<int>(std::min<int64_t>(20, left + 1));
    pollfd p{rd.get(), POLLIN, 0};
    int pr = ::poll(&p, open ? 1 : 0, wait_ms);
    if (open && pr > 0) open = Drain(rd.get(), &run.output);
  }
  // What the hook wrote before it ended; its children may keep writing, but
  // we do not wait for them.
  if (open) Drain(rd.get(), &run.output);
  run.exit_code = StatusToCode(status);
  return finish();
}

}  // namespace cm::apply
