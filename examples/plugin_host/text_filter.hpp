// The interface every plugin of this example offers.
#ifndef ISOLATE_EXAMPLES_PLUGIN_HOST_TEXT_FILTER_HPP
#define ISOLATE_EXAMPLES_PLUGIN_HOST_TEXT_FILTER_HPP

#include <isolate/interface.hpp>
#include <isolate/shared_buffer.hpp>

#include <cstdint>
#include <string>

ISOLATE_INTERFACE(text_filter,
                  (std::string, apply, (std::string const&)),
                  // How many letters the text in `text` holds (zero bytes end it).
                  (std::uint64_t, count_letters, (isolate::shared_buffer const&)));

#endif
