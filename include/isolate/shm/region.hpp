// A memfd mapped shared: the memory host and worker exchange rings through.
#ifndef ISOLATE_SHM_REGION_HPP
#define ISOLATE_SHM_REGION_HPP

#include "isolate/detail/config.hpp"
#include "isolate/detail/throw_error.hpp"
#include "isolate/shm/error.hpp"

#include <cerrno>
#include <cstddef>
#include <span>
#include <system_error>
#include <utility>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace isolate::shm {

// Owns one shared mapping of a memfd and the fd itself. The file is sealed
// against shrinking and growing: a peer that could shrink it would make our
// next access to the mapping a SIGBUS.
class region {
 public:
  // The seals create() applies and attach() insists on.
  static constexpr int required_seals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;

  region() noexcept = default;
  region(region&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)),
        size_(std::exchange(other.size_, 0)),
        fd_(std::exchange(other.fd_, -1)) {}
  region& operator=(region&& other) noexcept {
    if (this != &other) {
      reset();
      data_ = std::exchange(other.data_, nullptr);
      size_ = std::exchange(other.size_, 0);
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  region(region const&) = delete;
  region& operator=(region const&) = delete;
  ~region() { reset(); }

  // A new zero-filled region of `size` bytes; `name` only shows in /proc.
  static region create(std::size_t size, char const* name, std::error_code& ec) noexcept {
    ec.clear();
    if (size == 0) {
      ec = std::make_error_code(std::errc::invalid_argument);
      return {};
    }
    region r;
    r.fd_ = ::memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (r.fd_ < 0) {
      ec = last_error();
      return {};
    }
    // Only this user may open it through /proc (a memfd is created 0777).
    if (::fchmod(r.fd_, S_IRUSR | S_IWUSR) != 0 || ::ftruncate(r.fd_, static_cast<off_t>(size)) != 0 ||
        ::fcntl(r.fd_, F_ADD_SEALS, required_seals) != 0) {
      ec = last_error();
      return {};
    }
    if (!r.map(size, ec)) return {};
    return r;
  }

  static region create(std::size_t size, char const* name) {
    std::error_code ec;
    region r = create(size, name, ec);
    if (ec) isolate::detail::throw_error(ec, "isolate::shm::region::create");
    return r;
  }

  // Maps a region the peer created. Keeps its own duplicate of `fd`; the
  // caller still owns `fd`. Rejects a file that is not exactly
  // `expected_size` bytes or that the peer could still resize.
  // `read_only`: mapped PROT_READ (what a read-only descriptor allows).
  static region attach(int fd, std::size_t expected_size, std::error_code& ec, bool read_only = false) noexcept {
    ec.clear();
    if (fd < 0 || expected_size == 0) {
      ec = std::make_error_code(std::errc::invalid_argument);
      return {};
    }
    int const seals = ::fcntl(fd, F_GET_SEALS);
    if (seals < 0) {
      // EINVAL: not a file that supports sealing (so not a memfd we can trust).
      ec = errno == EINVAL ? make_error_code(errc::not_sealed) : last_error();
      return {};
    }
    if ((seals & required_seals) != required_seals) {
      ec = make_error_code(errc::not_sealed);
      return {};
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      ec = last_error();
      return {};
    }
    if (st.st_size < 0 || static_cast<std::size_t>(st.st_size) != expected_size) {
      ec = make_error_code(errc::bad_size);
      return {};
    }
    region r;
    r.fd_ = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (r.fd_ < 0) {
      ec = last_error();
      return {};
    }
    if (!r.map(expected_size, ec, read_only)) return {};
    return r;
  }

  static region attach(int fd, std::size_t expected_size) {
    std::error_code ec;
    region r = attach(fd, expected_size, ec);
    if (ec) isolate::detail::throw_error(ec, "isolate::shm::region::attach");
    return r;
  }

  std::byte* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  std::span<std::byte> bytes() const noexcept { return {data_, size_}; }
  int fd() const noexcept { return fd_; }

  // Closes the memfd and keeps the mapping (a forked child's copy of a
  // region whose memory it must leave alone).
  void close_descriptor() noexcept {
    if (fd_ >= 0) ::close(std::exchange(fd_, -1));
  }
  explicit operator bool() const noexcept { return data_ != nullptr; }

  // Takes the memory away from this process: the range becomes inaccessible
  // anonymous memory (so any access faults) and the descriptor is closed.
  // The range stays reserved until the region goes. False if the kernel refused.
  bool revoke() noexcept {
    close_descriptor();
    if (data_ == nullptr) return true;
    return ::mmap(data_, size_, PROT_NONE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0) !=
           MAP_FAILED;
  }

 private:
  static std::error_code last_error() noexcept { return {errno, std::system_category()}; }

  bool map(std::size_t size, std::error_code& ec, bool read_only = false) noexcept {
    void* p = ::mmap(nullptr, size, read_only ? PROT_READ : PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    if (p == MAP_FAILED) {
      ec = last_error();
      return false;
    }
    data_ = static_cast<std::byte*>(p);
    size_ = size;
    return true;
  }

  void reset() noexcept {
    if (data_ != nullptr) ::munmap(data_, size_);
    if (fd_ >= 0) ::close(fd_);
    data_ = nullptr;
    size_ = 0;
    fd_ = -1;
  }

  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
  int fd_ = -1;
};

}  // namespace isolate::shm

#endif
