// Interfaces that hand objects across (isolate::capability): the plugin makes
// counters for the host, and calls the counters the host hands it.
#ifndef ISOLATE_TESTS_CAPABILITIES_OBJECTS_HPP
#define ISOLATE_TESTS_CAPABILITIES_OBJECTS_HPP

#include <isolate/capability.hpp>
#include <isolate/interface.hpp>

#include <string>
#include <vector>

namespace objects_test {

ISOLATE_INTERFACE(counter,
                  (int, next, ()),
                  (int, value, ()),
                  // Throws std::runtime_error(what).
                  (void, fail, (std::string const&)),
                  // Never returns (the plugin's); returns at once (the host's).
                  (void, hang, ()));

// A host service that the plugin hands objects to.
ISOLATE_INTERFACE(registry, (int, publish, (isolate::capability<counter>)));

// The plugin.
ISOLATE_INTERFACE(factory,
                  (isolate::capability<counter>, make_counter, (int)),
                  (std::vector<isolate::capability<counter>>, make_counters, (int)),
                  (int, live_counters, ()),
                  (int, drain, (isolate::capability<counter>, int)),
                  (void, keep, (isolate::capability<counter>)),
                  (int, next_of_kept, ()),
                  (void, drop_kept, ()),
                  (isolate::capability<counter>, echo, (isolate::capability<counter>)),
                  (int, publish_one, (int)),
                  // Calls c->fail(what) and returns what it threw.
                  (std::string, failure_of, (isolate::capability<counter>, std::string)),
                  (void, crash, ()));

}  // namespace objects_test

#endif
