// A process plugin's stdout and stderr, captured for the host line by line
// (process::options::on_output). Each worker gets two new pipes; the host
// reads their ends, cuts what it reads into lines and hands each to the
// callback.
//
// The reading runs on a thread of its own per plugin, not on the io thread
// of the plugin's sessions: that one is blocked while a restarted worker
// loads (a worker whose pipe is not read while it loads would block in
// write() and miss its load timeout), and it notices crashes and timeouts,
// which a slow callback must not delay.
//
// What a worker writes is input from the plugin: the host holds at most
// max_output_line bytes of a line and delivers a longer one in pieces. Each
// pipe is read until its end, so what a crashing worker wrote arrives; its
// end comes when the worker and everything that inherited the pipe are gone
// (a sandboxed worker's namespace takes its descendants with it; under
// `minimal` a descendant that outlives the worker keeps its pipe open, and
// unload waits for it only so long).
#ifndef ISOLATE_DETAIL_PROCESS_OUTPUT_CAPTURE_HPP
#define ISOLATE_DETAIL_PROCESS_OUTPUT_CAPTURE_HPP

#include "isolate/detail/config.hpp"
#include "isolate/detail/process/unique_fd.hpp"
#include "isolate/transport/process_options.hpp"

#include <asio/buffer.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/post.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace isolate::detail {

// Cuts a stream of bytes into lines without their '\n', each at most
// `max_line` bytes: a longer line is delivered in pieces of `max_line`
// bytes, marked cut, then its rest. Holds at most `max_line` bytes.
class line_splitter {
 public:
  explicit line_splitter(std::size_t max_line) : max_line_(std::max<std::size_t>(max_line, 1)) {}

  // Calls deliver(text, cut) for each line (or piece) that `data` completes.
  template <class Deliver>
  void feed(std::string_view data, Deliver&& deliver) {
    while (!data.empty()) {
      const std::size_t room = max_line_ - held_.size();
      const std::size_t end = data.find('\n');
      if (std::min(end, data.size()) > room) {  // the line goes past the cap: cut it there
        emit(data.substr(0, room), true, deliver);
        data.remove_prefix(room);
        continue;
      }
      if (end == std::string_view::npos) {
        held_.append(data);
        return;
      }
      emit(data.substr(0, end), false, deliver);
      data.remove_prefix(end + 1);
    }
  }

  // The stream ended: delivers its unterminated last line, if any.
  template <class Deliver>
  void finish(Deliver&& deliver) {
    if (!held_.empty()) emit({}, false, deliver);
  }

 private:
  // Delivers what is held followed by `rest` (straight from the caller's
  // bytes when nothing is held, the usual case).
  template <class Deliver>
  void emit(std::string_view rest, bool cut, Deliver& deliver) {
    if (held_.empty()) return deliver(rest, cut);
    held_.append(rest);
    deliver(std::string_view(held_), cut);
    held_.clear();
  }

  std::size_t max_line_;
  std::string held_;  // the start of a line whose end has not been read yet
};

// The capture of one plugin's output, shared by its successive workers: the
// host's callback, the thread it is called on, and the readers of every
// worker's pipes.
//
// Thread safety: open(), drain() and close() may be called from any thread
// but the capture's own (the callback's); the callback is called on that
// thread only, one line at a time.
class output_capture {
 public:
  using callback = std::function<void(const output_line&)>;

  // How long destroying a plugin waits for its worker's last lines.
  static constexpr std::chrono::milliseconds drain_grace{1000};

  output_capture(std::string plugin, callback on_line, std::size_t max_line)
      : plugin_(std::move(plugin)), on_line_(std::move(on_line)), max_line_(max_line) {
    thread_ = std::thread([this] { run(); });
  }
  ~output_capture() { close(); }
  output_capture(const output_capture&) = delete;
  output_capture& operator=(const output_capture&) = delete;

  // Two new pipes for a worker about to start; their read ends are read
  // from now on (a worker that writes much while it loads must not block).
  // Returns the write ends, for the worker's stdout and stderr: the host
  // must close its copies once the worker has them, or the pipes never end.
  // After close(), the read ends are closed at once (the worker's writes
  // fail with EPIPE).
  std::pair<unique_fd, unique_fd> open(std::error_code& ec) {
    auto [out_read, out_write] = make_pipe(ec);
    if (ec) return {};
    auto [err_read, err_write] = make_pipe(ec);
    if (ec) return {};
    std::lock_guard lock(mutex_);
    if (closed_) return {std::move(out_write), std::move(err_write)};
    for (auto [end, stream] : {std::pair{&out_read, output_stream::out}, std::pair{&err_read, output_stream::err}}) {
      auto pipe = std::make_shared<reader>(*this, std::move(*end), stream);
      asio::post(io_, [pipe] { pipe->read(); });
    }
    return {std::move(out_write), std::move(err_write)};
  }

  // Waits until every pipe opened so far has been read to its end, or for
  // `patience`; true if they all were.
  bool drain(std::chrono::milliseconds patience) {
    std::unique_lock lock(mutex_);
    return drained_cv_.wait_for(lock, patience, [&] { return open_readers_ == 0; });
  }

  // Stops reading: no line is delivered once this returns. What a pipe
  // still holds then is dropped, with the part of a line held.
  void close() noexcept {
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
    }
    work_.reset();
    io_.stop();
    if (thread_.joinable()) thread_.join();
  }

 private:
  // One pipe of one worker, read until its end. Owned by the read in
  // flight: it goes when the pipe ends, or with the io_context.
  class reader : public std::enable_shared_from_this<reader> {
   public:
    // Room for what a pipe holds at a time is not needed: the pipe keeps
    // the rest, and the next read takes it.
    static constexpr std::size_t chunk_size = 16 * 1024;

    // Called with owner.mutex_ held.
    reader(output_capture& owner, unique_fd pipe, output_stream stream)
        : owner_(owner),
          stream_(stream),
          pipe_(owner.io_, pipe.release()),
          lines_(owner.max_line_),
          chunk_(chunk_size) {
      ++owner_.open_readers_;
    }
    ~reader() {
      {
        std::lock_guard lock(owner_.mutex_);
        --owner_.open_readers_;
      }
      owner_.drained_cv_.notify_all();
    }
    reader(const reader&) = delete;
    reader& operator=(const reader&) = delete;

    void read() {
      pipe_.async_read_some(asio::buffer(chunk_), [self = shared_from_this()](std::error_code ec, std::size_t got) {
        self->on_read(ec, got);
      });
    }

   private:
    void on_read(std::error_code ec, std::size_t got) {
      const auto deliver = [this](std::string_view text, bool cut) { owner_.deliver(stream_, text, cut); };
      lines_.feed(std::string_view(chunk_.data(), got), deliver);
      if (!ec) return read();
      // The end of the pipe (EOF; any other failure to read ends it too).
      lines_.finish(deliver);
    }

    output_capture& owner_;
    output_stream stream_;
    asio::posix::stream_descriptor pipe_;
    line_splitter lines_;
    std::vector<char> chunk_;
  };

  void deliver(output_stream stream, std::string_view text, bool cut) noexcept {
    try {
      on_line_(output_line{plugin_, stream, text, cut});
    } catch (...) {
      // The host's callback failed with this line: the line is dropped, and
      // the next one is delivered as usual. Nothing reaches the plugin.
    }
  }

  void run() noexcept {
    for (;;) {
      try {
        io_.run();
        return;  // stopped: close()
      } catch (...) {
        // Out of memory for a line held: that pipe's reader is gone (its
        // worker's later writes fail with EPIPE); the others go on.
      }
    }
  }

  std::string plugin_;
  callback on_line_;
  std::size_t max_line_;
  // Declared before io_, which destroys the readers still in flight.
  std::mutex mutex_;
  std::condition_variable drained_cv_;
  std::size_t open_readers_ = 0;  // guarded by mutex_
  bool closed_ = false;           // guarded by mutex_
  asio::io_context io_{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_{asio::make_work_guard(io_)};
  std::thread thread_;
};

}  // namespace isolate::detail

#endif
