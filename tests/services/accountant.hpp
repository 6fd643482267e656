// A plugin that calls back into its host: services (calls that wait for the
// host's answer, even re-entrantly) and events (one-way).
#ifndef ISOLATE_TESTS_SERVICES_ACCOUNTANT_HPP
#define ISOLATE_TESTS_SERVICES_ACCOUNTANT_HPP

#include <isolate/interface.hpp>

#include <string>

namespace services_test {

// Served by the host.
ISOLATE_INTERFACE(ledger,
                  (int, record, (std::string const&)),
                  (int, ask_plugin_to_double_twice, (int)));

// Handled by the host; the plugin does not wait for them.
ISOLATE_INTERFACE(ticks, (void, tick, (int)));

// Never provided by the host.
ISOLATE_INTERFACE(unprovided, (void, nothing, ()));

// The plugin.
ISOLATE_INTERFACE(accountant,
                  (int, post, (std::string const&)),
                  (int, post_many, (int)),
                  (int, double_it, (int)),
                  (int, round_trip_through_host, (int)),
                  (void, emit_ticks, (int)),
                  (void, emit_ticks_later, (int)),
                  (bool, missing_service_is_reported, ()));

}  // namespace services_test

#endif
