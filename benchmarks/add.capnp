# The Cap'n Proto baseline: the same small call isolate's process rows make.
@0x96b4c4923734aa20;

interface Adder {
  add @0 (a :Int32, b :Int32) -> (r :Int32);
}
