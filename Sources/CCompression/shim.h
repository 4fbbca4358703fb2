// zlib and libzstd decompress `prepare`'s .gz and .zst inputs as streams (bounded memory).
#include <zlib.h>
#include <zstd.h>
