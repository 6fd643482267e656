// One source, three plugins (CMakeLists.txt): "shout" upper-cases and adds
// its configured suffix; "rot" shifts letters by its configured shift, and
// refuses to start without one; "rot" v2 also says which version it is.
#include "text_filter.hpp"

#include <isolate/error.hpp>
#include <isolate/export.hpp>

#include <algorithm>
#include <cctype>
#include <string>

namespace {

// "key=value" from a configuration of space-separated words; empty if absent.
std::string setting(const std::string& configuration, const std::string& key) {
  const auto at = configuration.find(key + "=");
  if (at == std::string::npos) return {};
  const auto begin = at + key.size() + 1;
  return configuration.substr(begin, configuration.find(' ', begin) - begin);
}

class filter final : public text_filter {
 public:
  explicit filter(isolate::plugin_context& host) {
#if FILTER_SHOUT
    suffix_ = setting(host.configuration(), "suffix");
#else
    const auto shift = setting(host.configuration(), "shift");
    if (shift.empty() || !std::all_of(shift.begin(), shift.end(), ::isdigit)) {
      isolate::refuse_load("no shift=<number> in the configuration '" + host.configuration() + "'");
    }
    shift_ = std::stoi(shift) % 26;
#endif
  }

  std::string apply(const std::string& text) override {
    std::string out = text;
#if FILTER_SHOUT
    for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return out + suffix_;
#else
    for (char& c : out) {
      if (std::islower(static_cast<unsigned char>(c))) c = static_cast<char>('a' + (c - 'a' + shift_) % 26);
      if (std::isupper(static_cast<unsigned char>(c))) c = static_cast<char>('A' + (c - 'A' + shift_) % 26);
    }
#if FILTER_VERSION >= 2
    return "[v2] " + out;
#else
    return out;
#endif
#endif
  }

  std::uint64_t count_letters(const isolate::shared_buffer& text) override {
    std::uint64_t letters = 0;
    for (const auto c : text.as<const unsigned char>()) {
      if (c == 0) break;
      if (std::isalpha(c)) ++letters;
    }
    return letters;
  }

 private:
  std::string suffix_;
  int shift_ = 0;
};

}  // namespace

ISOLATE_EXPORT_PLUGIN(text_filter, filter);
