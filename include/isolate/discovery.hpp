// Discovery: what the plugins in a directory offer (interface name,
// fingerprint), read from each file's ELF symbol table and data, without
// loading the library or running any of its code, in the host or elsewhere:
//
//   for (const auto& found : isolate::discover("plugins"))
//     fmt::print("{}: {} ({:#x})\n", found.path.string(), found.interface_name, found.fingerprint);
//
// ISOLATE_EXPORT_PLUGIN exports the description as constant data
// (detail::plugin_description). A file is read as untrusted bytes: every
// offset and size is checked against the file, and whatever does not add up
// makes it "not a plugin", never a crash.
#ifndef ISOLATE_DISCOVERY_HPP
#define ISOLATE_DISCOVERY_HPP

#include "isolate/detail/plugin_entry.hpp"
#include "isolate/error.hpp"
#include "isolate/detail/process/unique_fd.hpp"

#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace isolate {

// One plugin file and what it offers.
struct discovered_plugin {
  std::filesystem::path path;
  std::string interface_name;
  std::uint64_t fingerprint = 0;
  std::uint32_t abi_version = 0;  // the plugin ABI it was built for (detail::plugin_abi_version)
};

namespace detail {

// Reads an ELF file's bytes at offsets it names itself, each read checked.
class elf_file {
 public:
  explicit elf_file(const std::filesystem::path& path)
      : fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) {
    struct stat st {};
    if (fd_ && ::fstat(fd_.get(), &st) == 0 && S_ISREG(st.st_mode)) size_ = static_cast<std::uint64_t>(st.st_size);
  }

  // The plugin_description exported by the file, if it has one that reads whole.
  std::optional<plugin_description> description() const {
    Elf64_Ehdr header{};
    if (!read(0, header)) return std::nullopt;
    if (std::memcmp(header.e_ident, ELFMAG, SELFMAG) != 0 || header.e_ident[EI_CLASS] != ELFCLASS64 ||
        header.e_ident[EI_DATA] != native_data() || header.e_shentsize != sizeof(Elf64_Shdr) ||
        header.e_shnum == 0 || header.e_shnum > max_sections) {
      return std::nullopt;
    }
    std::vector<Elf64_Shdr> sections(header.e_shnum);
    if (!read_array(header.e_shoff, sections)) return std::nullopt;
    for (const auto& symbols : sections) {
      if (symbols.sh_type != SHT_DYNSYM || symbols.sh_entsize != sizeof(Elf64_Sym)) continue;
      if (symbols.sh_link >= sections.size()) return std::nullopt;
      const auto& names = sections[symbols.sh_link];
      const std::uint64_t count = symbols.sh_size / sizeof(Elf64_Sym);
      if (count > max_symbols) return std::nullopt;
      std::vector<Elf64_Sym> table(static_cast<std::size_t>(count));
      if (!read_array(symbols.sh_offset, table)) return std::nullopt;
      for (const auto& symbol : table) {
        if (!named(names, symbol.st_name, plugin_description_symbol)) continue;
        return described_by(symbol, sections);
      }
    }
    return std::nullopt;
  }

 private:
  static constexpr std::size_t max_sections = 4096;
  static constexpr std::uint64_t max_symbols = 1u << 20;

  static unsigned char native_data() noexcept {
    return std::endian::native == std::endian::little ? ELFDATA2LSB : ELFDATA2MSB;
  }

  bool in_file(std::uint64_t offset, std::uint64_t size) const noexcept {
    return offset <= size_ && size <= size_ - offset;
  }

  bool read_bytes(std::uint64_t offset, void* out, std::size_t size) const noexcept {
    if (!fd_ || !in_file(offset, size)) return false;
    auto* bytes = static_cast<char*>(out);
    std::size_t got = 0;
    while (got < size) {
      const ssize_t n = ::pread(fd_.get(), bytes + got, size - got, static_cast<off_t>(offset + got));
      if (n <= 0) return false;
      got += static_cast<std::size_t>(n);
    }
    return true;
  }
  template <class T>
  bool read(std::uint64_t offset, T& out) const noexcept {
    return read_bytes(offset, &out, sizeof out);
  }
  template <class T>
  bool read_array(std::uint64_t offset, std::vector<T>& out) const noexcept {
    return read_bytes(offset, out.data(), out.size() * sizeof(T));
  }

  // Whether the string at `index` of the string table `names` is `wanted`.
  bool named(const Elf64_Shdr& names, std::uint32_t index, std::string_view wanted) const noexcept {
    if (names.sh_type != SHT_STRTAB || index >= names.sh_size || wanted.size() + 1 > names.sh_size - index) {
      return false;
    }
    char text[64]{};
    if (wanted.size() + 1 > sizeof text || !read_bytes(names.sh_offset + index, text, wanted.size() + 1)) return false;
    return std::string_view(text, wanted.size()) == wanted && text[wanted.size()] == '\0';
  }

  std::optional<plugin_description> described_by(const Elf64_Sym& symbol,
                                                  const std::vector<Elf64_Shdr>& sections) const {
    if (symbol.st_shndx == SHN_UNDEF || symbol.st_shndx >= sections.size() ||
        symbol.st_size < sizeof(plugin_description)) {
      return std::nullopt;
    }
    const auto& section = sections[symbol.st_shndx];
    if (section.sh_type == SHT_NOBITS || symbol.st_value < section.sh_addr ||
        symbol.st_value - section.sh_addr > section.sh_size ||
        sizeof(plugin_description) > section.sh_size - (symbol.st_value - section.sh_addr)) {
      return std::nullopt;
    }
    plugin_description description{};
    if (!read(section.sh_offset + (symbol.st_value - section.sh_addr), description)) return std::nullopt;
    if (std::memcmp(description.magic, plugin_description::expected_magic, sizeof description.magic) != 0) {
      return std::nullopt;
    }
    return description;
  }

  unique_fd fd_;
  std::uint64_t size_ = 0;
};

}  // namespace detail

// What the plugin file at `path` offers, or nothing if it is not an isolate
// plugin (or was built before descriptions were exported: plugin ABI 4).
inline std::optional<discovered_plugin> describe(const std::filesystem::path& path) {
  const auto description = detail::elf_file(path).description();
  if (!description) return std::nullopt;
  const std::size_t name_size =
      std::min<std::size_t>(description->name_size, detail::plugin_description::name_capacity);
  std::string name(description->interface_name, name_size);
  if (name.find('\0') != std::string::npos) return std::nullopt;  // a name holds no NUL: not ours
  return discovered_plugin{path, std::move(name), description->fingerprint, description->abi_version};
}

// The plugins among the regular files of `directory` (not its
// subdirectories), sorted by path. Throws isolate::error (load_failed) if the
// directory cannot be read.
inline std::vector<discovered_plugin> discover(const std::filesystem::path& directory) {
  std::error_code ec;
  std::filesystem::directory_iterator it(directory, ec);
  if (ec) throw error(errc::load_failed, "cannot list plugins in '" + directory.string() + "': " + ec.message());
  std::vector<discovered_plugin> found;
  for (const auto& entry : it) {
    std::error_code file_ec;
    if (!entry.is_regular_file(file_ec)) continue;
    if (auto plugin = describe(entry.path())) found.push_back(std::move(*plugin));
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.path < b.path; });
  return found;
}

}  // namespace isolate

#endif
