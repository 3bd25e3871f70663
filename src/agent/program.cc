#include "agent/program.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "core/errors.h"

extern char** environ;

namespace depot::agent {

using core::Status;

namespace {

// $1 run dir, $2 working directory, $3 command; descriptor 9 is RUN/lock, locked
// before the wrapper was born. See program.h for why each step.
constexpr char kWrapper[] = R"sh(
mkdir "$1/started" 2>/dev/null || exit 0
echo $$ >"$1/pid.tmp" && mv -f "$1/pid.tmp" "$1/pid"
if cd "$2"; then
  /bin/sh -c "$3" >"$1/output" 2>&1 </dev/null 9>&-
  c=$?
else
  echo "depot: cannot enter $2" >"$1/output"
  c=127
fi
printf '%s\n' "$c" >"$1/exit.tmp" && sync "$1/exit.tmp" && mv "$1/exit.tmp" "$1/exit" && sync "$1"
)sh";

std::string ReadSmall(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return "";
  char buf[64];
  std::size_t n = std::fread(buf, 1, sizeof(buf) - 1, f);
  std::fclose(f);
  return std::string(buf, n);
}

// True when some process holds RUN/lock.
bool LockHeld(const std::string& run_dir) {
  int fd = ::open((run_dir + "/lock").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool held = ::flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  ::close(fd);
  return held;
}

}  // namespace

core::Result<int> StartProgram(const std::string& run_dir, const ProgramSpec& spec) {
  if (::mkdir(run_dir.c_str(), 0700) != 0) return core::ErrnoStatus(errno, "creating " + run_dir);
  std::vector<std::string> env_store;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) env_store.emplace_back(*e);
  for (const auto& e : spec.extra_env) env_store.push_back(e);
  std::vector<char*> envp;
  for (auto& e : env_store) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string sh = "/bin/sh", c = "-c", script = kWrapper, name = "depot-program", dir = run_dir,
              work = spec.work_dir, cmd = spec.command;
  char* argv[] = {sh.data(),  c.data(),    script.data(), name.data(),
                  dir.data(), work.data(), cmd.data(),    nullptr};
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // Its own session: the program survives the agent and can be killed as a group.
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  // The lock is taken here, before the wrapper exists, and handed to it: from now
  // until the wrapper exits, someone holds it, so "lock free" means "no wrapper".
  int lock_fd = ::open((run_dir + "/lock").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (lock_fd < 0) return core::ErrnoStatus(errno, "creating " + run_dir + "/lock");
  if (::flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    ::close(lock_fd);
    return core::ErrnoStatus(err, "locking " + run_dir + "/lock");
  }
  posix_spawn_file_actions_t files;
  posix_spawn_file_actions_init(&files);
  posix_spawn_file_actions_adddup2(&files, lock_fd, 9);
  pid_t pid = 0;
  int rc = posix_spawn(&pid, "/bin/sh", &files, &attr, argv, envp.data());
  posix_spawn_file_actions_destroy(&files);
  posix_spawnattr_destroy(&attr);
  ::close(lock_fd);
  if (rc != 0) return core::ErrnoStatus(rc, "starting /bin/sh for the install program");
  // The wrapper leads its own session, so its pid names the group to kill. Recorded
  // here too (the wrapper writes the same, in case this process dies first), so that
  // KillProgram works from the moment this returns, not only once the wrapper ran.
  std::string pid_text = std::to_string(pid) + "\n";
  int pid_fd =
      ::open((run_dir + "/pid.agent").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (pid_fd >= 0) {
    bool written =
        ::write(pid_fd, pid_text.data(), pid_text.size()) == static_cast<ssize_t>(pid_text.size());
    ::close(pid_fd);
    if (written) ::rename((run_dir + "/pid.agent").c_str(), (run_dir + "/pid").c_str());
  }
  return static_cast<int>(pid);
}

core::Result<RunStatus> CheckProgram(const std::string& run_dir) {
  RunStatus st;
  std::string exit_text = ReadSmall(run_dir + "/exit");
  if (!exit_text.empty()) {
    st.state = RunState::kExited;
    st.exit_code = std::atoi(exit_text.c_str());
    return st;
  }
  struct stat sb;
  if (::stat(run_dir.c_str(), &sb) != 0)
    return core::ErrnoStatus(errno, "run directory " + run_dir);
  if (LockHeld(run_dir)) {
    st.state = RunState::kRunning;
    return st;
  }
  // No wrapper is alive. It may have written its exit code just before it left.
  exit_text = ReadSmall(run_dir + "/exit");
  if (!exit_text.empty()) {
    st.state = RunState::kExited;
    st.exit_code = std::atoi(exit_text.c_str());
    return st;
  }
  st.state = ::stat((run_dir + "/started").c_str(), &sb) == 0 ? RunState::kVanished
                                                              : RunState::kNeverStarted;
  return st;
}

void KillProgram(const std::string& run_dir) {
  if (!LockHeld(run_dir)) return;
  int pid = std::atoi(ReadSmall(run_dir + "/pid").c_str());
  if (pid > 1) ::kill(-pid, SIGKILL);
}

std::string OutputTail(const std::string& run_dir, std::size_t max_bytes) {
  int fd = ::open((run_dir + "/output").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  struct stat sb;
  std::string out;
  if (::fstat(fd, &sb) == 0) {
    off_t size = sb.st_size;
    off_t from = size > static_cast<off_t>(max_bytes) ? size - static_cast<off_t>(max_bytes) : 0;
    out.resize(static_cast<std::size_t>(size - from));
    ssize_t n = ::pread(fd, out.data(), out.size(), from);
    out.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  }
  ::close(fd);
  return out;
}

void ReapChildren() {
  int status = 0;
  while (::waitpid(-1, &status, WNOHANG) > 0) {
  }
}

}  // namespace depot::agent
