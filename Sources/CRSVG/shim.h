// librsvg renders the report's SVG, and cairo writes the PNG (report --out x.png).
#include <librsvg/rsvg.h>
#include <cairo.h>
