// A hostile plugin for the limits tests: each method tries to do harm and
// says what happened. An int result is 0 when the attempt succeeded and the
// errno that refused it otherwise, so a test reads the refusal the plugin saw.
#ifndef ISOLATE_TESTS_LIMITS_HOSTILE_HPP
#define ISOLATE_TESTS_LIMITS_HOSTILE_HPP

#include <isolate/interface.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace limits_test {

ISOLATE_INTERFACE(hostile,
                  // A plugin that computes: the worker works.
                  (int, add, (int, int)),
                  // getpid() in the worker's own PID namespace.
                  (int, own_pid, ()),
                  // kill(pid, signal).
                  (int, send_signal, (int, int)),
                  // ptrace(PTRACE_ATTACH, pid) (detached again if it worked).
                  (int, trace, (int)),
                  // process_vm_readv of one byte of pid, at an address of the worker's own (EFAULT: pid was reached).
                  (int, read_memory_of, (int)),
                  // open(path, flags, 0644), then close.
                  (int, open_path, (std::string const&, int)),
                  // chmod(path, 0666), utimensat(path, now), chown(path, -1, -1): each one's errno or 0.
                  (std::vector<int>, change_metadata, (std::string const&)),
                  // The whole file; throws std::system_error if it cannot be read.
                  (std::string, read_file, (std::string const&)),
                  // Creates or truncates the file and writes `text` into it.
                  (int, write_file, (std::string const&, std::string const&)),
                  // socket(family, SOCK_STREAM, 0), then close.
                  (int, make_socket, (int)),
                  // connect() to 127.0.0.1:port (the errno of socket() if that failed first).
                  (int, connect_tcp, (int)),
                  // connect() to a pathname unix socket (the errno of socket() if that failed first).
                  (int, connect_unix, (std::string const&)),
                  // connect() to an abstract unix socket named `name` (without its leading NUL).
                  (int, connect_abstract, (std::string const&)),
                  // Allocates `mib` MiB with new, 1 MiB at a time, touching every page; returns the MiB it got.
                  (std::uint64_t, allocate_mib, (std::uint64_t)),
                  // As allocate_mib, under a new_handler of its own that throws
                  // bad_alloc, which it catches: stops at the first refusal, lets
                  // it all go and returns the MiB it got (threat-model gap G11).
                  // `aligned`: in blocks of an over-aligned type (aligned new).
                  (std::uint64_t, allocate_until_refused, (std::uint64_t, bool)),
                  // Opens /dev/null up to `count` times, then closes them all:
                  // {descriptors it got, errno of the first open that failed or 0}.
                  (std::vector<int>, open_many, (int)),
                  // true: opens /dev/null until refused and keeps them all
                  // (returns how many); false: closes those it keeps (returns how many).
                  (int, hold_open_files, (bool)),
                  // true: starts threads until refused and keeps them waiting
                  // (returns how many); false: lets those go and joins them (returns how many).
                  (int, hold_threads, (bool)),
                  // Like allocate_mib, in memory mapped MAP_SHARED | MAP_ANONYMOUS; returns the MiB it got.
                  (std::uint64_t, allocate_shared_mib, (std::uint64_t)),
                  // Like allocate_mib, in memfds of 1 MiB each, mapped shared and closed; returns the MiB it got.
                  (std::uint64_t, allocate_memfd_mib, (std::uint64_t)),
                  // Like allocate_mib, in SysV shared memory segments of 1 MiB, attached; returns the MiB it got.
                  (std::uint64_t, allocate_sysv_mib, (std::uint64_t)),
                  // setrlimit(resource, unlimited).
                  (int, raise_limit, (int)),
                  // Never returns: a busy loop, with SIGXCPU ignored if asked.
                  (void, burn_cpu, (bool)),
                  // Forks up to `count` children that wait, and then lets them go:
                  // {forks that succeeded, errno of the first that failed or 0}.
                  (std::vector<int>, fork_bomb, (int)),
                  // Double-forks a daemon that calls setsid(), names itself `comm`
                  // (PR_SET_NAME), closes its descriptors and sleeps; returns its
                  // pid as the worker sees it once it has done so, or -errno.
                  (int, start_daemon, (std::string const&)),
                  // The line of /proc/self/status starting with `field` ("CapEff:"), or "".
                  (std::string, status_line, (std::string const&)),
                  // getenv(name), or "(unset)".
                  (std::string, environment, (std::string const&)),
                  // getcwd().
                  (std::string, working_directory, ()),
                  // readlink(path), or "errno N".
                  (std::string, link_target, (std::string const&)),
                  // capset() of every capability, effective, permitted and inheritable.
                  (int, raise_capabilities, ()),
                  // setresuid(uid, uid, uid).
                  (int, become_user, (int)),
                  // raise(SIGSEGV).
                  (void, crash, ()));

}  // namespace limits_test

#endif
