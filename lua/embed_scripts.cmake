# Writes OUT_DIR/lua_scripts.hpp and .cpp: one accessor per script in SCRIPTS,
# named after its file, returning its name and source.
set(hpp "// generated from lua/*.lua by lua/embed_scripts.cmake: do not edit\n#pragma once\n\n#include <string_view>\n#include <vector>\n\nnamespace levee::lua {\n\nstruct Script {\n    std::string_view name;   // file name without .lua\n    std::string_view source;\n};\n\n")
set(cpp "// generated from lua/*.lua by lua/embed_scripts.cmake: do not edit\n#include \"lua_scripts.hpp\"\n\nnamespace levee::lua {\n\n")
set(all "")
foreach(path ${SCRIPTS})
  get_filename_component(name ${path} NAME_WE)
  file(READ ${path} text)
  string(APPEND hpp "const Script &${name}();\n")
  # a raw string delimiter no script contains
  string(APPEND cpp "const Script &${name}() {\n    static const Script s{\"${name}\", R\"levee_lua(${text})levee_lua\"};\n    return s;\n}\n\n")
  string(APPEND all "        &${name}(),\n")
endforeach()
string(APPEND hpp "\n// Every script, for tests that check each one.\nconst std::vector<const Script *> &all();\n\n} // namespace levee::lua\n")
string(APPEND cpp "const std::vector<const Script *> &all() {\n    static const std::vector<const Script *> scripts = {\n${all}    };\n    return scripts;\n}\n\n} // namespace levee::lua\n")
foreach(ext hpp cpp)
  file(WRITE ${OUT_DIR}/lua_scripts.${ext}.tmp "${${ext}}")
  configure_file(${OUT_DIR}/lua_scripts.${ext}.tmp ${OUT_DIR}/lua_scripts.${ext} COPYONLY)
endforeach()
