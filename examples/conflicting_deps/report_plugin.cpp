// One source, two plugins: `legacy_report` linked against libstamp 1.0 and
// `modern_report` against libstamp 1.1 (REPORT_NAME and STAMP_VERSION differ).
#include <isolate/export.hpp>

#include "report.hpp"
#include "stamp.hpp"

#include <unistd.h>

namespace example {
namespace {

class report_impl final : public report {
 public:
  std::string name() override { return REPORT_NAME; }
  std::string built_against() override { return STAMP_VERSION; }
  std::string running_against() override { return stamp::version(); }
  std::string date(int year, int month, int day) override { return stamp::format_date(year, month, day); }
  int pid() override { return static_cast<int>(::getpid()); }
};

}  // namespace

ISOLATE_EXPORT_PLUGIN(report, report_impl);

}  // namespace example
