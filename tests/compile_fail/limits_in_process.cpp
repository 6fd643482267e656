// A limits preset that needs a process, given to an in-process plugin.
#include <isolate/isolate.hpp>
ISOLATE_INTERFACE(parser, (int, parse, (std::string const&)));
void load_it() { isolate::load<parser, isolate::in_process>("libparser.so", isolate::limits::standard()); }
