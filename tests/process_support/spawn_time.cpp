// Measures how long starting the helper child takes: spawn + exit + reap, and
// spawn + one control-channel round trip + exit + reap (the shape of a worker
// start with its hello). Prints the median and p90 of N runs (argv[1], default 200).
// argv[2], if given, is another program to time the first loop with (e.g. /bin/true).
#include "isolate/detail/process/child.hpp"
#include "isolate/detail/process/control_channel.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

using namespace isolate::detail;

namespace {

using clock_type = std::chrono::steady_clock;

void report(std::string_view what, std::vector<double>& us) {
  std::sort(us.begin(), us.end());
  fmt::print("{:<44} median {:8.0f} us   p90 {:8.0f} us   min {:8.0f} us\n", what, us[us.size() / 2],
             us[us.size() * 9 / 10], us.front());
}

}  // namespace

int main(int argc, char** argv) {
  int const runs = argc > 1 ? std::atoi(argv[1]) : 200;
  std::string const program = argc > 2 ? argv[2] : ISOLATE_TEST_CHILD_HELPER;
  std::vector<std::string> const args = argc > 2 ? std::vector<std::string>{} : std::vector<std::string>{"exit", "0"};
  std::vector<double> exit_only;
  std::vector<double> with_hello;
  for (int i = 0; i < runs; ++i) {
    auto const start = clock_type::now();
    auto child = child_process::spawn(spawn_options{program, args, {}, {}});
    if (!child.wait_exit(std::chrono::seconds(10)).value().exited_with(0)) return 1;
    exit_only.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - start).count());
  }
  for (int i = 0; i < runs; ++i) {
    auto const start = clock_type::now();
    std::error_code ec;
    auto [host_end, child_end] = make_socket_pair(ec);
    auto child = child_process::spawn(spawn_options{ISOLATE_TEST_CHILD_HELPER, {"echo"}, {{child_end.get(), 3}}, {}});
    child_end.reset();
    std::byte const hello[16] = {};
    write_message(host_end.get(), 1, hello, std::chrono::seconds(10));
    auto reply = read_message(host_end.get(), 64, std::chrono::seconds(10));
    auto const ready = clock_type::now();
    host_end.reset();  // eof: the helper exits
    if (!child.wait_exit(std::chrono::seconds(10)).value().exited_with(0) || reply.type != 1) return 1;
    with_hello.push_back(std::chrono::duration<double, std::micro>(ready - start).count());
  }
  fmt::print("{} runs\n", runs);
  report(fmt::format("spawn + exit + reap ({})", program.substr(program.rfind('/') + 1)), exit_only);
  report("spawn + first control round trip", with_hello);
}
