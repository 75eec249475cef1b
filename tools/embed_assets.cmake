# Turns static files into one C source: a table of {path, content type,
# bytes, length} that actors/console.c serves. Run at build time by the
# custom command in CMakeLists.txt (cmake -P), so no tool beyond CMake is
# needed. Inputs: OUT (the .c to write), DIR (the assets' folder), FILES
# (comma-separated names in DIR), URL_PREFIX (prepended to each name).
cmake_minimum_required(VERSION 3.21)
string(REPLACE "," ";" FILES "${FILES}")

function(content_type name out)
  if(name MATCHES "\\.html$")
    set(${out} "text/html; charset=utf-8" PARENT_SCOPE)
  elseif(name MATCHES "\\.js$")
    set(${out} "text/javascript; charset=utf-8" PARENT_SCOPE)
  elseif(name MATCHES "\\.css$")
    set(${out} "text/css; charset=utf-8" PARENT_SCOPE)
  elseif(name MATCHES "\\.svg$")
    set(${out} "image/svg+xml" PARENT_SCOPE)
  else()
    set(${out} "application/octet-stream" PARENT_SCOPE)
  endif()
endfunction()

set(text "/* Generated from ${DIR} by tools/embed_assets.cmake; do not edit. */\n")
string(APPEND text "#include \"actors/console.h\"\n\n")
set(table "")
# Sixteen bytes a line (CMake's regex has no {n} repetition).
string(REPEAT "0x[0-9a-f][0-9a-f]," 16 row)
set(i 0)
foreach(name IN LISTS FILES)
  file(READ "${DIR}/${name}" hex HEX)
  string(LENGTH "${hex}" hexlen)
  math(EXPR len "${hexlen} / 2")
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  string(REGEX REPLACE "${row}" "\\0\n    " bytes "${bytes}")
  content_type("${name}" ctype)
  string(APPEND text "static const unsigned char asset${i}[${len} + 1] = {\n    ${bytes}0x00};\n")
  string(APPEND table "    {\"${URL_PREFIX}${name}\", \"${ctype}\", asset${i}, ${len}},\n")
  math(EXPR i "${i} + 1")
endforeach()
string(APPEND text "\nconst sl_console_asset_t sl_console_assets[] = {\n${table}};\n")
string(APPEND text "const unsigned sl_console_asset_count = ${i};\n")
file(WRITE "${OUT}.tmp" "${text}")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUT}.tmp")
