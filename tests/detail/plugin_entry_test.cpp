#include "isolate/detail/plugin_entry.hpp"

#include <doctest/doctest.h>

#include <string_view>
#include <type_traits>

using isolate::detail::plugin_entry;

// The entry crosses a shared library's boundary as plain C data.
static_assert(std::is_standard_layout_v<plugin_entry> && std::is_trivially_copyable_v<plugin_entry>);
static_assert(std::is_same_v<isolate::detail::plugin_entry_function, const plugin_entry* (*)() noexcept>);

TEST_CASE("the entry's symbol and version") {
  CHECK(std::string_view(isolate::detail::plugin_entry_symbol) == "isolate_plugin_entry");
  CHECK(isolate::detail::plugin_abi_version >= 1);
}
