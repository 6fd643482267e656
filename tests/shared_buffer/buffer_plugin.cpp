#include "buffers.hpp"

#include <isolate/export.hpp>

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <numeric>
#include <utility>

namespace shared_buffer_test {
namespace {

std::uint64_t sum(const isolate::shared_buffer& buffer) {
  const auto bytes = buffer.as<const std::uint8_t>();
  return std::accumulate(bytes.begin(), bytes.end(), std::uint64_t{0});
}

class buffer_user_impl final : public buffer_user {
 public:
  explicit buffer_user_impl(isolate::plugin_context& host) : host_(host.service<buffer_host>()) {}

  std::uint64_t checksum(const isolate::shared_buffer& buffer) override { return sum(buffer); }
  void fill(isolate::shared_buffer buffer, std::uint8_t value) override {
    std::ranges::fill(buffer.as<std::uint8_t>(), value);
  }
  std::uint64_t address_of(const isolate::shared_buffer& buffer) override {
    return reinterpret_cast<std::uintptr_t>(buffer.data());
  }
  std::uint64_t sum_of_two(const isolate::shared_buffer& a, const isolate::shared_buffer& b) override {
    return sum(a) + sum(b);
  }
  isolate::shared_buffer echo(const isolate::shared_buffer& buffer) override { return buffer; }
  void keep(const isolate::shared_buffer& buffer) override { kept_ = buffer; }
  void drop_kept() override { kept_ = {}; }
  isolate::shared_buffer return_kept() override { return kept_; }
  std::uint64_t checksum_kept() override { return sum(kept_); }
  int duplicate_mapping(const isolate::shared_buffer& buffer) override {
    void* copy = ::mremap(buffer.data(), 0, buffer.size(), MREMAP_MAYMOVE);
    return copy == MAP_FAILED ? errno : 0;
  }
  int make_writable(const isolate::shared_buffer& buffer) override {
    return ::mprotect(buffer.data(), buffer.size(), PROT_READ | PROT_WRITE) == 0 ? 0 : errno;
  }
  std::uint64_t pass_to_host(const isolate::shared_buffer& buffer) override { return host_.checksum_on_host(buffer); }
  std::uint64_t checksum_of_host_buffer(std::uint64_t size) override { return sum(host_.buffer_from_host(size)); }

  isolate::shared_buffer make_own(std::uint64_t size) override {
    isolate::shared_buffer own(size);
    std::ranges::fill(own.as<std::uint8_t>(), std::uint8_t{9});
    return own;
  }
  std::uint64_t pass_own_to_host(std::uint64_t size) override { return host_.checksum_on_host(make_own(size)); }
  isolate::shared_buffer resize_kept(std::uint64_t size) override {
    // What a hostile plugin can do with the library's own internals: claim
    // the kept buffer's id for memory of another size.
    using access = isolate::detail::shared_buffer_access;
    return access::adopt(access::state(kept_)->id(), isolate::shm::region::create(size, "forged"));
  }
  int pid() override { return static_cast<int>(::getpid()); }
  void crash() override { ::kill(::getpid(), SIGKILL); }

 private:
  buffer_host& host_;
  isolate::shared_buffer kept_;
};

}  // namespace
}  // namespace shared_buffer_test

ISOLATE_EXPORT_PLUGIN(shared_buffer_test::buffer_user, shared_buffer_test::buffer_user_impl);
