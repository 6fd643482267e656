#include "isolate/detail/process/output_capture.hpp"

#include <doctest/doctest.h>

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using isolate::output_line;
using isolate::output_stream;
using isolate::detail::line_splitter;
using isolate::detail::output_capture;
using isolate::detail::unique_fd;

namespace {

struct piece {
  std::string text;
  bool cut = false;
  friend bool operator==(const piece&, const piece&) = default;
};

std::vector<piece> split(std::size_t max_line, const std::vector<std::string>& chunks, bool finish = true) {
  line_splitter lines(max_line);
  std::vector<piece> out;
  const auto deliver = [&](std::string_view text, bool cut) { out.push_back({std::string(text), cut}); };
  for (const auto& chunk : chunks) lines.feed(chunk, deliver);
  if (finish) lines.finish(deliver);
  return out;
}

// Lines received by an output_capture's callback, waited for with a bound.
struct received {
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<std::pair<output_stream, std::string>> lines;
  std::string plugin;

  output_capture::callback callback() {
    return [this](const output_line& line) {
      std::lock_guard lock(mutex);
      plugin = line.plugin;
      lines.emplace_back(line.stream, std::string(line.text));
      cv.notify_all();
    };
  }
  bool wait_for_count(std::size_t count) {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, 20s, [&] { return lines.size() >= count; });
  }
};

void write_all(const unique_fd& fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const auto wrote = ::write(fd.get(), bytes.data(), bytes.size());
    REQUIRE(wrote > 0);
    bytes.remove_prefix(static_cast<std::size_t>(wrote));
  }
}

}  // namespace

TEST_CASE("a line splitter delivers lines without their newline, whatever the chunks") {
  CHECK(split(100, {"one\ntwo\n"}) == std::vector<piece>{{"one"}, {"two"}});
  CHECK(split(100, {"o", "ne\nt", "w", "o\n", "\n"}) == std::vector<piece>{{"one"}, {"two"}, {""}});
  CHECK(split(100, {"one\nunterminated"}, false) == std::vector<piece>{{"one"}});
  CHECK(split(100, {"one\nunterminated"}) == std::vector<piece>{{"one"}, {"unterminated"}});
  CHECK(split(100, {}).empty());
}

TEST_CASE("a line splitter cuts a line longer than its cap into pieces, marked") {
  CHECK(split(4, {"abcdefghij\nxy\n"}) == std::vector<piece>{{"abcd", true}, {"efgh", true}, {"ij"}, {"xy"}});
  // Exactly the cap is whole, even when its newline comes in the next chunk.
  CHECK(split(4, {"abcd\n"}) == std::vector<piece>{{"abcd"}});
  CHECK(split(4, {"abcd", "\n"}) == std::vector<piece>{{"abcd"}});
  CHECK(split(4, {"ab", "cd", "e\n"}) == std::vector<piece>{{"abcd", true}, {"e"}});
  CHECK(split(4, {"abcdefgh"}) == std::vector<piece>{{"abcd", true}, {"efgh"}});
  CHECK(split(0, {"ab\n"}) == std::vector<piece>{{"a", true}, {"b"}});  // a cap of 0 is 1
}

TEST_CASE("an output capture reads both pipes to their end, in order within each") {
  received got;
  output_capture capture("the_plugin", got.callback(), 64 * 1024);
  std::error_code ec;
  auto [out, err] = capture.open(ec);
  REQUIRE_FALSE(ec);
  std::string out_text, err_text;
  for (int i = 0; i < 2000; ++i) {
    out_text += "out " + std::to_string(i) + "\n";
    err_text += "err " + std::to_string(i) + "\n";
  }
  // More than a pipe holds, from two threads: the capture reads as they write.
  std::thread err_writer([&, &err = err] { write_all(err, err_text + "last"); });
  write_all(out, out_text);
  err_writer.join();
  out.reset();
  err.reset();
  REQUIRE(capture.drain(20s));
  std::lock_guard lock(got.mutex);
  REQUIRE(got.lines.size() == 4001);
  CHECK(got.plugin == "the_plugin");
  int next_out = 0, next_err = 0;
  for (const auto& [stream, text] : got.lines) {
    if (stream == output_stream::out) CHECK(text == "out " + std::to_string(next_out++));
    if (stream == output_stream::err) {
      CHECK(text == (next_err == 2000 ? std::string("last") : "err " + std::to_string(next_err)));
      ++next_err;
    }
  }
  CHECK(next_out == 2000);
  CHECK(next_err == 2001);
}

TEST_CASE("an output capture keeps reading after its callback throws") {
  received got;
  auto record = got.callback();
  output_capture capture(
      "p",
      [&](const output_line& line) {
        if (line.text.starts_with("throw")) throw std::runtime_error("the host's logger failed");
        record(line);
      },
      1024);
  std::error_code ec;
  auto [out, err] = capture.open(ec);
  REQUIRE_FALSE(ec);
  write_all(out, "one\nthrow\ntwo\nthrow again\nthree\n");
  REQUIRE(got.wait_for_count(3));
  std::lock_guard lock(got.mutex);
  CHECK(got.lines == std::vector<std::pair<output_stream, std::string>>{
                         {output_stream::out, "one"}, {output_stream::out, "two"}, {output_stream::out, "three"}});
}

TEST_CASE("draining an output capture waits for its pipes, at most for its patience") {
  received got;
  output_capture capture("p", got.callback(), 1024);
  CHECK(capture.drain(0ms));  // nothing open
  std::error_code ec;
  auto [out, err] = capture.open(ec);
  REQUIRE_FALSE(ec);
  write_all(err, "held open");
  CHECK_FALSE(capture.drain(50ms));  // a writer still holds the pipes
  out.reset();
  err.reset();
  CHECK(capture.drain(20s));
  std::lock_guard lock(got.mutex);
  REQUIRE(got.lines.size() == 1);
  CHECK(got.lines[0] == std::pair{output_stream::err, std::string("held open")});
}

TEST_CASE("a closed output capture delivers nothing more, and a new pipe fails its writer") {
  received got;
  output_capture capture("p", got.callback(), 1024);
  std::error_code ec;
  auto [out, err] = capture.open(ec);
  REQUIRE_FALSE(ec);
  capture.close();
  write_all(out, "after close\n");  // the pipe holds it; no one reads it
  auto [late_out, late_err] = capture.open(ec);
  REQUIRE_FALSE(ec);
  const auto ignored = ::signal(SIGPIPE, SIG_IGN);
  CHECK(::write(late_out.get(), "x", 1) < 0);
  CHECK(errno == EPIPE);
  ::signal(SIGPIPE, ignored);
  std::lock_guard lock(got.mutex);
  CHECK(got.lines.empty());
}
