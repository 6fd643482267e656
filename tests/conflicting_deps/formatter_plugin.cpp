// One source, built into three plugins: against libversioned 1.0, against
// 1.1, and against 1.1 using parse(), which only 1.1 has (FORMATTER_USES_PARSE).
#include <isolate/export.hpp>

#include "formatter.hpp"
#include "versioned.hpp"

#include <dlfcn.h>
#include <unistd.h>

#include <string>

namespace conflicting_deps_test {
namespace {

class formatter_impl final : public formatter {
 public:
  int built_against() override { return VERSIONED_LEVEL; }
  int api_level() override { return versioned::api_level(); }
  std::string format(int value) override { return versioned::format(value); }
  int round_trip(int value) override {
#if defined(FORMATTER_USES_PARSE)
    return versioned::parse(versioned::format(value));
#else
    return std::stoi(versioned::format(value), nullptr, 0);
#endif
  }
  std::string library_file() override {
    // The address the dynamic loader bound our reference to, not our own copy.
    Dl_info info{};
    if (::dladdr(reinterpret_cast<void*>(&versioned::api_level), &info) == 0 || info.dli_fname == nullptr) return {};
    return info.dli_fname;
  }
  int pid() override { return static_cast<int>(::getpid()); }
};

}  // namespace

ISOLATE_EXPORT_PLUGIN(formatter, formatter_impl);

}  // namespace conflicting_deps_test
