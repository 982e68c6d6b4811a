#include "util/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

extern char** environ;

namespace cm {
namespace {

using Clock = std::chrono::steady_clock;

void Drain(int fd, std::string* into, bool* open) {
  char buf[65536];
  ssize_t n = read(fd, buf, sizeof buf);
  if (n > 0) {
    into->append(buf, static_cast<size_t>(n));
  } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
    *open = false;
  }
}

// argv[0] as execve needs it: as given when it has a '/', else the first
// executable of that name in $PATH (looked up before fork: the child may
// only make async-signal-safe calls).
std::string ResolveProgram(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = getenv("PATH");
  std::string dirs = path && *path ? path : "/usr/local/bin:/usr/bin:/bin";
  for (size_t begin = 0; begin <= dirs.size();) {
    size_t end = dirs.find(':', begin);
    if (end == std::string::npos) end = dirs.size();
    std::string dir = end > begin ? dirs.substr(begin, end - begin) : ".";
    std::string candidate = dir + "/" + name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
    begin = end + 1;
  }
  return {};
}

// fork + execve with stdin from /dev/null, stdout (and stderr) onto the
// pipes' write ends, a process group of its own, an empty signal mask,
// SIGPIPE at its default, and PR_SET_PDEATHSIG(SIGKILL). Returns the pid or
// the errno of the failed exec.
Result<pid_t> Spawn(const std::string& program, char* const* argv, char* const* envp, int out_fd, int err_fd) {
  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0) return ErrnoError("pipe", errno);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    close(report[0]);
    close(report[1]);
    return ErrnoError("fork", e);
  }
  if (pid == 0) {  // the child: async-signal-safe calls only
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);  // the parent died before the line above took effect
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(out_fd, 1) < 0 || (err_fd >= 0 && dup2(err_fd, 2) < 0)) {
      int e = errno;
      (void)!write(report[1], &e, sizeof e);
      _exit(127);
    }
    struct sigaction dfl = {};
    dfl.sa_handler = SIG_DFL;
    sigaction(SIGPIPE, &dfl, nullptr);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execve(program.c_str(), argv, envp);
    int e = errno;
    (void)!write(report[1], &e, sizeof e);
    _exit(127);
  }
  setpgid(pid, pid);  // also here, so kill(-pid) cannot race the child's own call
  close(report[1]);
  int child_errno = 0;
  ssize_t n;
  while ((n = read(report[0], &child_errno, sizeof child_errno)) < 0 && errno == EINTR) {
  }
  close(report[0]);
  if (n == static_cast<ssize_t>(sizeof child_errno)) {  // exec failed: the child is gone
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return ErrnoError(program, child_errno);
  }
  return pid;
}

}  // namespace

Result<ProcessResult> RunProcess(const std::vector<std::string>& argv, const ProcessOptions& opts) {
  if (argv.empty()) return Error(Code::kUsage, "no command");
  const std::string program = ResolveProgram(argv[0]);
  if (program.empty()) return ErrnoError(argv[0], ENOENT);
  int out_pipe[2], err_pipe[2] = {-1, -1};
  if (pipe2(out_pipe, O_CLOEXEC) != 0) return ErrnoError("pipe", errno);
  if (opts.capture_stderr && pipe2(err_pipe, O_CLOEXEC) != 0) {
    int e = errno;
    close(out_pipe[0]);
    close(out_pipe[1]);
    return ErrnoError("pipe", e);
  }
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<char*> envp;
  for (char** e = environ; e && *e; ++e) envp.push_back(*e);
  for (const auto& e : opts.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  auto spawned = Spawn(program, args.data(), envp.data(), out_pipe[1], opts.capture_stderr ? err_pipe[1] : -1);
  close(out_pipe[1]);
  if (opts.capture_stderr) close(err_pipe[1]);
  if (!spawned.ok()) {
    close(out_pipe[0]);
    if (opts.capture_stderr) close(err_pipe[0]);
    return spawned.status();
  }
  const pid_t pid = *spawned;

  ProcessResult res;
  bool out_open = true, err_open = opts.capture_stderr;
  auto start = Clock::now();
  int signals_sent = 0;
  Clock::time_point term_at{};
  while (out_open || err_open) {
    pollfd fds[2];
    int n = 0;
    if (out_open) fds[n++] = {out_pipe[0], POLLIN, 0};
    if (err_open) fds[n++] = {err_pipe[0], POLLIN, 0};
    int pr = poll(fds, static_cast<nfds_t>(n), 100);
    if (pr > 0) {
      for (int i = 0; i < n; ++i) {
        if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        if (fds[i].fd == out_pipe[0]) Drain(out_pipe[0], &res.out, &out_open);
        else Drain(err_pipe[0], &res.err, &err_open);
      }
    }
    bool cancel = opts.cancel && opts.cancel->load();
    bool late = opts.timeout.count() > 0 && Clock::now() - start > opts.timeout;
    if ((cancel || late) && signals_sent == 0) {
      res.timed_out = late;
      kill(-pid, SIGTERM);
      signals_sent = 1;
      term_at = Clock::now();
    } else if (signals_sent == 1 && Clock::now() - term_at > std::chrono::seconds(3)) {
      kill(-pid, SIGKILL);
      signals_sent = 2;
    }
  }
  close(out_pipe[0]);
  if (opts.capture_stderr) close(err_pipe[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) res.exit_code = WEXITSTATUS(status);
  else if (WIFSIGNALED(status)) res.exit_code = 128 + WTERMSIG(status);
  return res;
}

std::string LastLine(const std::string& text) {
  size_t end = text.size();
  while (end > 0) {
    size_t nl = text.rfind('\n', end - 1);
    size_t begin = nl == std::string::npos ? 0 : nl + 1;
    if (end > begin) return text.substr(begin, end - begin);
    if (nl == std::string::npos) break;
    end = nl;
  }
  return {};
}

}  // namespace cm

namespace cm {

Result<int> StartProcess(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
  if (argv.empty()) return Error(Code::kUsage, "no command");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, 2, 1);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<char*> envp;
  for (char** e = environ; e && *e; ++e) envp.push_back(*e);
  for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, argv[0].c_str(), &fa, &attr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return ErrnoError(argv[0], rc);
  return static_cast<int>(pid);
}

size_t ReapExited(std::vector<int>* pids) {
  size_t n = 0;
  for (auto it = pids->begin(); it != pids->end();) {
    int status = 0;
    pid_t r = waitpid(*it, &status, WNOHANG);
    if (r == *it || (r < 0 && errno == ECHILD)) {
      it = pids->erase(it);
      ++n;
    } else {
      ++it;
    }
  }
  return n;
}

}  // namespace cm
