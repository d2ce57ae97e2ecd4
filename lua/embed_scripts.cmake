# Writes OUT: a C++ table of (name, source) for every script in SCRIPTS.
set(body "// generated from lua/*.lua by lua/embed_scripts.cmake: do not edit\n#include \"lua_scripts.hpp\"\n\nnamespace levee::lua {\n\nconst std::vector<Script> &scripts() {\n    static const std::vector<Script> all = {\n")
foreach(path ${SCRIPTS})
  get_filename_component(name ${path} NAME_WE)
  file(READ ${path} text)
  # a raw string delimiter no script contains
  set(body "${body}        {\"${name}\", R\"levee_lua(${text})levee_lua\"},\n")
endforeach()
set(body "${body}    };\n    return all;\n}\n\nconst Script *find(std::string_view name) {\n    for (const Script &s : scripts()) {\n        if (s.name == name) {\n            return &s;\n        }\n    }\n    return nullptr;\n}\n\n} // namespace levee::lua\n")
file(WRITE ${OUT}.tmp "${body}")
configure_file(${OUT}.tmp ${OUT} COPYONLY)
