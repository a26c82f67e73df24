# The one place for compiler flags.
set(MITMTUN_WARNINGS
    -Wall -Wextra -Wshadow -Wmissing-prototypes -Wformat=2 -Wvla -Wstrict-prototypes
    -Wno-format-nonliteral)
if(MITMTUN_WERROR)
  list(APPEND MITMTUN_WARNINGS -Werror)
endif()
add_compile_options(${MITMTUN_WARNINGS} -fstack-protector-strong)
if(NOT CMAKE_BUILD_TYPE STREQUAL "Debug" AND NOT MITMTUN_SANITIZE)
  add_compile_definitions(_FORTIFY_SOURCE=2)
endif()
if(MITMTUN_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()
if(MITMTUN_FUZZ)
  # Coverage feedback from our code, not just the fuzz targets' own files: without it libFuzzer
  # mutates blind (the HTTP target saw 24 edges, none of httpmsg.c).
  add_compile_options(-fsanitize=fuzzer-no-link)
  add_link_options(-fsanitize=fuzzer-no-link)
endif()
