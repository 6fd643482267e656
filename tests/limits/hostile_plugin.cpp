#include "hostile.hpp"

#include <isolate/export.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/shm.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstddef>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <new>
#include <sstream>
#include <system_error>
#include <thread>
#include <vector>

namespace limits_test {
namespace {

int errno_unless(bool ok) { return ok ? 0 : errno; }

// Retries a call interrupted by a signal.
template <class Call>
auto again_on_eintr(Call call) {
  for (;;) {
    auto r = call();
    if (r >= 0 || errno != EINTR) return r;
  }
}

// A socket of `family`, connected to `address`; 0 or the errno of the step that failed.
int connect_to(int family, const sockaddr* address, socklen_t size) {
  const int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  const int err = errno_unless(::connect(fd, address, size) == 0);
  ::close(fd);
  return err;
}

class hostile_impl final : public hostile {
 public:
  explicit hostile_impl(isolate::plugin_context&) {}

  int add(int a, int b) override { return a + b; }
  int own_pid() override { return static_cast<int>(::getpid()); }

  int send_signal(int pid, int signal) override { return errno_unless(::kill(pid, signal) == 0); }

  int trace(int pid) override {
    if (::ptrace(PTRACE_ATTACH, pid, nullptr, nullptr) != 0) return errno;
    ::waitpid(pid, nullptr, __WALL);
    ::ptrace(PTRACE_DETACH, pid, nullptr, nullptr);
    return 0;
  }

  int read_memory_of(int pid) override {
    static const char probe = 'p';  // mapped here; in a worker of the same binary, at the same place
    char byte = 0;
    iovec local{&byte, 1};
    iovec remote{const_cast<char*>(&probe), 1};
    return errno_unless(::process_vm_readv(pid, &local, 1, &remote, 1, 0) == 1);
  }

  int open_path(const std::string& path, int flags) override {
    const int fd = ::open(path.c_str(), flags | O_CLOEXEC, 0644);
    if (fd < 0) return errno;
    ::close(fd);
    return 0;
  }

  std::vector<int> change_metadata(const std::string& path) override {
    const auto result = [](int rc) { return rc == 0 ? 0 : errno; };
    return {result(::chmod(path.c_str(), 0666)), result(::utimensat(AT_FDCWD, path.c_str(), nullptr, 0)),
            result(::chown(path.c_str(), static_cast<uid_t>(-1), static_cast<gid_t>(-1)))};
  }

  std::string read_file(const std::string& path) override {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw std::system_error(errno, std::system_category(), "open " + path);
    std::string text;
    char chunk[4096];
    for (;;) {
      const auto n = again_on_eintr([&] { return ::read(fd, chunk, sizeof chunk); });
      if (n <= 0) break;
      text.append(chunk, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return text;
  }

  int write_file(const std::string& path, const std::string& text) override {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return errno;
    int err = 0;
    for (std::size_t done = 0; done < text.size() && err == 0;) {  // a short write goes on where it stopped
      const auto written = again_on_eintr([&] { return ::write(fd, text.data() + done, text.size() - done); });
      if (written < 0) err = errno;
      else done += static_cast<std::size_t>(written);
    }
    ::close(fd);
    return err;
  }

  int make_socket(int family) override {
    const int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return errno;
    ::close(fd);
    return 0;
  }

  int connect_tcp(int port) override {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return connect_to(AF_INET, reinterpret_cast<const sockaddr*>(&address), sizeof address);
  }

  int connect_unix(const std::string& path) override {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (path.size() >= sizeof address.sun_path) return ENAMETOOLONG;
    std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
    return connect_to(AF_UNIX, reinterpret_cast<const sockaddr*>(&address), sizeof address);
  }

  int connect_abstract(const std::string& name) override {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (name.size() + 1 > sizeof address.sun_path) return ENAMETOOLONG;
    std::memcpy(address.sun_path + 1, name.data(), name.size());
    return connect_to(AF_UNIX, reinterpret_cast<const sockaddr*>(&address),
                      static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size()));
  }

  std::uint64_t allocate_mib(std::uint64_t mib) override {
    constexpr std::size_t one_mib = std::size_t{1} << 20;
    for (std::uint64_t i = 0; i < mib; ++i) {
      auto block = std::make_unique<char[]>(one_mib);  // value-initialised: every page written
      hoard_.push_back(std::move(block));
    }
    return mib;
  }

  std::uint64_t allocate_until_refused(std::uint64_t mib, bool aligned) override {
    constexpr std::size_t one_mib = std::size_t{1} << 20;
    struct alignas(4096) page {
      std::byte bytes[4096];
    };
    const std::new_handler before = std::set_new_handler([] { throw std::bad_alloc(); });
    std::vector<std::unique_ptr<char[]>> held;
    std::vector<std::unique_ptr<page[]>> held_aligned;
    held.reserve(mib);
    held_aligned.reserve(mib);
    try {
      while (held.size() + held_aligned.size() < mib) {
        if (aligned) {
          held_aligned.push_back(std::make_unique<page[]>(one_mib / sizeof(page)));  // new[] with align_val_t
        } else {
          held.push_back(std::make_unique<char[]>(one_mib));
        }
      }
    } catch (const std::bad_alloc&) {
    }
    std::set_new_handler(before);
    return held.size() + held_aligned.size();
  }

  std::vector<int> open_many(int count) override {
    std::vector<int> fds;
    int refused = 0;
    for (int i = 0; i < count; ++i) {
      const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        refused = errno;
        break;
      }
      fds.push_back(fd);
    }
    for (const int fd : fds) ::close(fd);
    return {static_cast<int>(fds.size()), refused};
  }

  int hold_open_files(bool hold) override {
    if (hold) {
      for (int fd; (fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0;) held_files_.push_back(fd);
      return static_cast<int>(held_files_.size());
    }
    const int closed = static_cast<int>(held_files_.size());
    for (const int fd : held_files_) ::close(fd);
    held_files_.clear();
    return closed;
  }

  int hold_threads(bool hold) override {
    if (hold) {
      try {
        for (;;) {
          held_threads_.emplace_back([this] {
            std::unique_lock lock(threads_mutex_);
            threads_released_.wait(lock, [this] { return release_threads_; });
          });
        }
      } catch (const std::system_error&) {
        // EAGAIN: the processes limit
      }
      return static_cast<int>(held_threads_.size());
    }
    {
      std::lock_guard lock(threads_mutex_);
      release_threads_ = true;
    }
    threads_released_.notify_all();
    const int joined = static_cast<int>(held_threads_.size());
    for (auto& thread : held_threads_) thread.join();
    held_threads_.clear();
    release_threads_ = false;
    return joined;
  }

  std::uint64_t allocate_shared_mib(std::uint64_t mib) override {
    constexpr std::size_t one_mib = std::size_t{1} << 20;
    for (std::uint64_t i = 0; i < mib; ++i) {
      void* block = ::mmap(nullptr, one_mib, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
      if (block == MAP_FAILED) return i;
      std::memset(block, 1, one_mib);
    }
    return mib;
  }

  std::uint64_t allocate_memfd_mib(std::uint64_t mib) override {
    constexpr std::size_t one_mib = std::size_t{1} << 20;
    for (std::uint64_t i = 0; i < mib; ++i) {
      const int fd = ::memfd_create("hoard", MFD_CLOEXEC);
      if (fd < 0) return i;
      void* block = ::ftruncate(fd, one_mib) == 0
                        ? ::mmap(nullptr, one_mib, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
                        : MAP_FAILED;
      ::close(fd);  // the mapping keeps the memory
      if (block == MAP_FAILED) return i;
      std::memset(block, 1, one_mib);
    }
    return mib;
  }

  std::uint64_t allocate_sysv_mib(std::uint64_t mib) override {
    constexpr std::size_t one_mib = std::size_t{1} << 20;
    for (std::uint64_t i = 0; i < mib; ++i) {
      const int id = ::shmget(IPC_PRIVATE, one_mib, IPC_CREAT | 0600);
      if (id < 0) return i;
      void* block = ::shmat(id, nullptr, 0);
      if (block == reinterpret_cast<void*>(-1)) return i;
      std::memset(block, 1, one_mib);
    }
    return mib;
  }

  int raise_limit(int resource) override {
    const rlimit unlimited{RLIM_INFINITY, RLIM_INFINITY};
    return errno_unless(::setrlimit(static_cast<__rlimit_resource>(resource), &unlimited) == 0);
  }

  void burn_cpu(bool ignore_sigxcpu) override {
    if (ignore_sigxcpu) std::signal(SIGXCPU, SIG_IGN);
    volatile std::uint64_t spin = 0;
    for (;;) spin = spin + 1;
  }

  std::vector<int> fork_bomb(int count) override {
    int hold[2];
    if (::pipe2(hold, O_CLOEXEC) != 0) return {0, errno};
    std::vector<pid_t> children;
    int refused = 0;
    for (int i = 0; i < count; ++i) {
      const pid_t pid = ::fork();
      if (pid == 0) {  // wait until the parent lets go (EOF), then leave
        ::close(hold[1]);
        char c;
        (void)!::read(hold[0], &c, 1);
        ::_exit(0);
      }
      if (pid < 0) {
        refused = errno;
        break;
      }
      children.push_back(pid);
    }
    ::close(hold[1]);
    ::close(hold[0]);
    for (const pid_t child : children) again_on_eintr([&] { return ::waitpid(child, nullptr, 0); });
    return {static_cast<int>(children.size()), refused};
  }

  int start_daemon(const std::string& comm) override {
    int ready[2];
    if (::pipe2(ready, O_CLOEXEC) != 0) return -errno;
    const pid_t child = ::fork();
    if (child < 0) {
      const int err = errno;
      ::close(ready[0]);
      ::close(ready[1]);
      return -err;
    }
    if (child == 0) {
      const pid_t grandchild = ::fork();
      if (grandchild == 0) {
        ::setsid();
        ::prctl(PR_SET_NAME, comm.c_str());
        const pid_t self = ::getpid();
        (void)!::write(ready[1], &self, sizeof self);
        ::close_range(0, ~0U, 0);  // a daemon keeps nothing of its parent's
        for (;;) ::pause();
      }
      ::_exit(grandchild > 0 ? 0 : 1);
    }
    ::close(ready[1]);
    again_on_eintr([&] { return ::waitpid(child, nullptr, 0); });
    pid_t daemon = 0;
    const auto got = again_on_eintr([&] { return ::read(ready[0], &daemon, sizeof daemon); });
    ::close(ready[0]);
    return got == sizeof daemon ? static_cast<int>(daemon) : -ECHILD;
  }

  std::string status_line(const std::string& field) override {
    std::ifstream status("/proc/self/status");
    for (std::string line; std::getline(status, line);) {
      if (line.rfind(field, 0) == 0) return line;
    }
    return {};
  }

  std::string environment(const std::string& name) override {
    const char* value = std::getenv(name.c_str());
    return value == nullptr ? "(unset)" : value;
  }

  std::string working_directory() override {
    char path[4096];
    return ::getcwd(path, sizeof path) != nullptr ? path : "errno " + std::to_string(errno);
  }

  std::string link_target(const std::string& path) override {
    char target[4096];
    const auto n = ::readlink(path.c_str(), target, sizeof target);
    return n < 0 ? "errno " + std::to_string(errno) : std::string(target, static_cast<std::size_t>(n));
  }

  int raise_capabilities() override {
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct all[2];
    for (auto& d : all) d = {~0U, ~0U, ~0U};
    return errno_unless(::syscall(SYS_capset, &header, all) == 0);
  }

  int become_user(int uid) override {
    const auto id = static_cast<uid_t>(uid);
    return errno_unless(::syscall(SYS_setresuid, id, id, id) == 0);
  }

  void crash() override { std::raise(SIGSEGV); }

 private:
  std::vector<std::unique_ptr<char[]>> hoard_;
  std::vector<int> held_files_;
  std::vector<std::thread> held_threads_;
  std::mutex threads_mutex_;
  std::condition_variable threads_released_;
  bool release_threads_ = false;
};

}  // namespace
}  // namespace limits_test

ISOLATE_EXPORT_PLUGIN(limits_test::hostile, limits_test::hostile_impl);
