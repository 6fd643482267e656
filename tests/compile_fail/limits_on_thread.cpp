// A limits preset that needs a process, given to a thread plugin.
#include <isolate/isolate.hpp>
ISOLATE_INTERFACE(parser, (int, parse, (std::string const&)));
void load_it() { isolate::load<parser, isolate::thread>("libparser.so", isolate::limits::strict().memory_mb(64)); }
