#include "watched_impl.hpp"

#include <isolate/export.hpp>

ISOLATE_EXPORT_PLUGIN(supervision_test::watched, supervision_test::watched_impl);
