// examples/sandboxed_function: a parser we do not trust with hostile input,
// run on each input in a throwaway sandbox (isolate::sandbox). The parser is
// plain code of this program: no plugin library, no interface.
#include <isolate/sandbox.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

// What the parser makes of a nested list such as "[1,[2,3],[[4]]]".
struct summary {
  long sum = 0;
  int depth = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(sum, depth);
  }
};

namespace {

// Recursive descent, as parsers are: an input ten million '[' deep overflows
// the stack, and a bug in its handling of comments loops forever on a '#'.
summary parse_list(const std::string& text, std::size_t& at, int depth) {
  summary s{0, depth};
  ++at;  // '['
  while (at < text.size() && text[at] != ']') {
    const char c = text[at];
    if (c == '[') {
      const summary inner = parse_list(text, at, depth + 1);
      s.sum += inner.sum;
      s.depth = std::max(s.depth, inner.depth);
    } else if (c >= '0' && c <= '9') {
      std::size_t used = 0;
      s.sum += std::stol(text.substr(at, 20), &used);
      at += used;
    } else if (c == ',') {
      ++at;
    } else if (c != '#') {  // the bug: a '#' is never skipped
      throw std::invalid_argument(fmt::format("unexpected '{}' at offset {}", c, at));
    }
  }
  ++at;  // ']'
  return s;
}

summary parse(std::string text) {
  std::size_t at = 0;
  return parse_list(text, at, 1);
}

}  // namespace

int main() {
  using namespace std::chrono_literals;
  isolate::sandbox::start_fork_server();  // first: before the program starts any thread
  const std::vector<std::pair<std::string, std::string>> inputs{
      {"a list", "[1,[2,3],[[4]]]"},
      {"a typo", "[1,2,x]"},
      {"ten million '['", std::string(10'000'000, '[')},
      {"a comment", "[1,#2]"},
  };
  int held = 0;
  isolate::sandbox sb{isolate::limits::strict().memory_mb(128), {.timeout = 1s, .name = "parse"}};
  for (const auto& [name, text] : inputs) {
    try {
      const summary s = sb.run(parse, text);
      fmt::print("{}: sum {}, depth {}\n", name, s.sum, s.depth);
      held += s.sum == 10;
    } catch (const std::exception& e) {  // a typo: invalid_argument; the others: isolate::error
      fmt::print("{}: {}\n", name, e.what());
      held += 1;
    }
    fmt::print("  {}\n", sb.last_report());
  }
  fmt::print("verdict: {}\n", held == static_cast<int>(inputs.size()) ? "the sandbox held" : "FAILED");
  return held == static_cast<int>(inputs.size()) ? 0 : 1;
}
