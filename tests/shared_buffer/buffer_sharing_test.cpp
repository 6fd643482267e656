// The pieces of shared buffers without a plugin: the handle itself, its wire
// form, and the process plumbing (what the host lends, the control messages
// that carry memfds, what the worker accepts).
#include "isolate/detail/process/buffer_sharing.hpp"

#include "isolate/detail/codec.hpp"
#include "isolate/detail/process/control_channel.hpp"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>

#include "../support/failure.hpp"

using isolate::shared_buffer;
using isolate_test::failure_of;
using namespace isolate::detail;
using namespace std::chrono_literals;

namespace {

std::uint64_t id_of(const shared_buffer& buffer) { return shared_buffer_access::state(buffer)->id(); }

int fd_of(const shared_buffer& buffer) { return shared_buffer_access::state(buffer)->region().fd(); }

}  // namespace

TEST_CASE("a shared buffer is zero-filled sealed shared memory, and copies share it") {
  shared_buffer buffer(10'000);
  REQUIRE(buffer.size() == 10'000);
  CHECK_FALSE(buffer.empty());
  CHECK(std::ranges::all_of(buffer.bytes(), [](std::byte b) { return b == std::byte{0}; }));
  const int seals = ::fcntl(fd_of(buffer), F_GET_SEALS);
  CHECK((seals & (F_SEAL_SHRINK | F_SEAL_GROW)) == (F_SEAL_SHRINK | F_SEAL_GROW));

  shared_buffer copy = buffer;
  copy.bytes()[5] = std::byte{42};
  CHECK(buffer.bytes()[5] == std::byte{42});
  CHECK(copy == buffer);
  CHECK_FALSE(shared_buffer(10) == buffer);

  CHECK(buffer.as<std::uint32_t>().size() == 2500);
  CHECK(buffer.as<const double>().size() == 1250);

  shared_buffer moved = std::move(copy);
  CHECK(copy.empty());  // NOLINT(bugprone-use-after-move): a moved-from handle is empty
  CHECK(moved == buffer);
}

TEST_CASE("an empty shared buffer has no memory") {
  for (const shared_buffer& empty : {shared_buffer(), shared_buffer(0)}) {
    CHECK(empty.empty());
    CHECK(empty.size() == 0);
    CHECK(empty.data() == nullptr);
    CHECK(empty.as<int>().empty());
  }
}

TEST_CASE("on the wire a shared buffer is its id and size; in one process it decodes to itself") {
  shared_buffer buffer(4096);
  isolate::wire::buffer out;
  encode_values(out, buffer, shared_buffer());
  CHECK(out.size() == 32);
  shared_buffer back, empty(1);
  decode_values(out.bytes(), back, empty);
  CHECK(back == buffer);
  CHECK(empty.empty());
}

TEST_CASE("encoding records the call's buffers, and the transport takes them") {
  shared_buffer a(100), b(200);
  isolate::wire::buffer out;
  attachment_scope outer;
  {
    attachment_scope attached;
    encode_values(out, a, 7, b);
    REQUIRE(attached.buffers().size() == 2);
    CHECK(attached.buffers()[0] == a);
    CHECK(attached.buffers()[1] == b);
    CHECK(take_attachments() == &attached.buffers());
    encode_values(out, a);  // taken: a call made meanwhile records nothing here
    CHECK(attached.buffers().size() == 2);
  }
  CHECK(attachments_being_encoded == &outer.buffers());
}

TEST_CASE("a released buffer no longer decodes, and a wrong size never does") {
  isolate::wire::buffer out;
  std::uint64_t id = 0;
  {
    shared_buffer buffer(64);
    id = id_of(buffer);
    encode_values(out, buffer);
    const std::uint64_t forged[] = {id, 65};
    shared_buffer wrong;
    CHECK(failure_of([&] { decode_values(std::as_bytes(std::span(forged)), wrong); }).code() ==
          isolate::errc::protocol_error);
  }
  shared_buffer gone;
  CHECK(failure_of([&] { decode_values(out.bytes(), gone); }).code() == isolate::errc::protocol_error);
  const std::uint64_t empty_with_size[] = {0, 8};
  CHECK(failure_of([&] { decode_values(std::as_bytes(std::span(empty_with_size)), gone); }).code() ==
        isolate::errc::protocol_error);
}

TEST_CASE("the host accepts back only the buffers it lent, while it holds them") {
  lent_buffers lent;
  shared_buffer given(128), other(128);
  lent.add(given);
  CHECK(lent.find(id_of(given), 128) == given);
  CHECK(failure_of([&] { lent.find(id_of(given), 256); }).code() == isolate::errc::protocol_error);
  CHECK(failure_of([&] { lent.find(id_of(other), 128); }).code() == isolate::errc::protocol_error);
  const auto id = id_of(given);
  given = shared_buffer();
  CHECK(failure_of([&] { lent.find(id, 128); }).code() == isolate::errc::protocol_error);
}

TEST_CASE("a worker is sent each buffer once, with its memfd, and told when the host lets go") {
  std::error_code ec;
  auto [host_end, worker_end] = make_socket_pair(ec);
  REQUIRE(!ec);
  auto control = std::make_shared<worker_control>(std::move(host_end));
  lent_buffers lent;
  received_buffers received;
  auto deliver = [&](control_type expected) {
    std::vector<unique_fd> fds;
    auto message = read_message_with_fds(worker_end.get(), 1024, 1, fds, 5s, ec);
    REQUIRE(!ec);
    REQUIRE(message.type == static_cast<std::uint32_t>(expected));
    if (expected == control_type::share_buffer) {
      const auto body = decode_message<buffer_message>(message.body);
      REQUIRE(fds.size() == 1);
      received.add(body.id, body.size, std::move(fds.front()));
      return body;
    }
    const auto body = decode_message<forget_message>(message.body);
    CHECK(fds.empty());
    received.forget(body.id, body.answers);
    return buffer_message{body.id, body.answers};
  };

  const auto deadline = std::chrono::steady_clock::now() + 5s;
  std::uint64_t id = 0;
  {
    shared_buffer buffer(1 << 16);
    id = id_of(buffer);
    buffer.bytes()[1000] = std::byte{17};
    const shared_buffer twice[] = {buffer, buffer};
    REQUIRE(!control->share(twice, lent, deadline));
    REQUIRE(!control->share(twice, lent, deadline));
    CHECK(control->buffers_shared() == 1);
    CHECK(lent.find(id, 1 << 16) == buffer);
    const auto shared = deliver(control_type::share_buffer);
    CHECK(shared.id == id);
    CHECK(shared.size == 1 << 16);

    // The worker maps the same pages.
    const auto mapped = received.find(id, 1 << 16);
    CHECK(mapped.data() != buffer.data());
    CHECK(mapped.bytes()[1000] == std::byte{17});
    mapped.bytes()[2000] = std::byte{18};
    CHECK(buffer.bytes()[2000] == std::byte{18});
    CHECK(failure_of([&] { received.find(id, 1 << 17); }).code() == isolate::errc::protocol_error);
    CHECK(received.size() == 1);
  }
  CHECK(deliver(control_type::forget_buffer).id == id);
  CHECK(received.size() == 0);

  // An answer to the plugin may be decoded after the host let go: the worker
  // keeps the buffer until then.
  {
    shared_buffer answer(4096);
    id = id_of(answer);
    const shared_buffer one[] = {answer};
    REQUIRE(!control->share(one, lent, deadline, true));
    REQUIRE(!control->share(one, lent, deadline, true));  // named by two answers
    deliver(control_type::share_buffer);
  }
  const auto forgotten = deliver(control_type::forget_buffer);
  CHECK(forgotten.size == 2);  // answers
  CHECK(received.size() == 1);
  CHECK(received.answers().find(id, 4096).size() == 4096);
  CHECK(received.size() == 1);
  CHECK(received.find(id, 4096).size() == 4096);  // a call's use is not an answer
  CHECK(received.answers().find(id, 4096).size() == 4096);
  CHECK(received.size() == 0);

  // A closed worker_control sends nothing more.
  control->close();
  shared_buffer late(10);
  const shared_buffer one[] = {late};
  CHECK(static_cast<bool>(control->share(one, lent, deadline)));
}

TEST_CASE("the worker refuses a descriptor that is not a sealed memfd of the announced size") {
  received_buffers received;
  int pipe_fds[2];
  REQUIRE(::pipe2(pipe_fds, O_CLOEXEC) == 0);
  unique_fd read_end(pipe_fds[0]), write_end(pipe_fds[1]);
  received.add(1, 4096, std::move(read_end));

  const int unsealed = ::memfd_create("unsealed", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  REQUIRE(unsealed >= 0);
  REQUIRE(::ftruncate(unsealed, 4096) == 0);
  received.add(2, 4096, unique_fd(unsealed));

  shared_buffer sized(4096);
  received.add(3, 8192, unique_fd(::fcntl(fd_of(sized), F_DUPFD_CLOEXEC, 0)));
  received.add(4, 4096, unique_fd());

  for (std::uint64_t id : {1, 2, 3, 4}) {
    CAPTURE(id);
    const auto e = failure_of([&] { received.find(id, id == 3 ? 8192 : 4096); });
    CHECK(e.code() == isolate::errc::protocol_error);
    CHECK(std::string(e.what()).find("cannot be mapped") != std::string::npos);
  }
  CHECK(received.size() == 0);
}

TEST_CASE("a call waiting for a buffer that has not arrived yet gets it once it does, or fails when the host goes") {
  received_buffers received;
  shared_buffer buffer(4096);
  std::thread late([&] {
    std::this_thread::yield();
    received.add(7, 4096, unique_fd(::fcntl(fd_of(buffer), F_DUPFD_CLOEXEC, 0)));
  });
  CHECK(received.find(7, 4096).size() == 4096);
  late.join();

  std::thread closing([&] { received.close(); });
  CHECK(failure_of([&] { received.find(8, 4096); }).code() == isolate::errc::plugin_closed);
  closing.join();
}

TEST_CASE("a control message carries at most the descriptors the reader allows") {
  std::error_code ec;
  auto [a, b] = make_socket_pair(ec);
  REQUIRE(!ec);
  const int fds[] = {a.get(), b.get()};
  write_message_with_fds(a.get(), 6, {}, fds, 1s, ec);
  REQUIRE(!ec);
  std::vector<unique_fd> got;
  read_message_with_fds(b.get(), 1024, 1, got, 1s, ec);
  CHECK(ec == std::errc::bad_message);
  CHECK(got.empty());
}
