// inputs: a small WASI command that reads and changes files, for the tests
// of input files in the sandbox (small enough to compile quickly under the
// race detector). Arguments are operations, each printing one line:
//
//	sum PATH        "sum PATH: SIZE HASH" (64-bit FNV-1a of the bytes, in hex), read in 64 KiB reads
//	poke PATH TEXT  writes TEXT at offset 0 without truncating: "poke PATH: ok"
//	trunc PATH N    truncates PATH to N bytes: "trunc PATH: ok"
//	write PATH N    creates or truncates PATH and writes N bytes of 'x' in 64 KiB writes: "write PATH: ok"
//	spin            prints "spin", flushes and loops forever (the job ends at its timeout or cancel)
//
// A failing operation prints "OP PATH: ERRNO-NAME" instead and the program
// goes on. Rebuild (from the repository root):
//
//	clang --target=wasm32-wasi -std=c11 -O2 -Wall -Wextra -Werror -Wl,--strip-all \
//	    -o worker/sandbox/testdata/inputs.wasm worker/sandbox/testdata/inputs.c
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *errname(int e) {
    switch (e) {
    case EACCES: return "EACCES";
    case EROFS: return "EROFS";
    case ENOENT: return "ENOENT";
    case EIO: return "EIO";
    case EISDIR: return "EISDIR";
    case EBADF: return "EBADF";
    case ENOTCAPABLE: return "ENOTCAPABLE";
    default: return "EOTHER";
    }
}

static char buf[64 << 10];

static void sum(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        printf("sum %s: %s\n", path, errname(errno));
        return;
    }
    uint64_t h = 14695981039346656037ull, size = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0) {
            printf("sum %s: %s\n", path, errname(errno));
            close(fd);
            return;
        }
        if (n == 0) {
            break;
        }
        for (ssize_t i = 0; i < n; i++) {
            h = (h ^ (unsigned char)buf[i]) * 1099511628211ull;
        }
        size += (uint64_t)n;
    }
    close(fd);
    printf("sum %s: %" PRIu64 " %016" PRIx64 "\n", path, size, h);
}

static void poke(const char *path, const char *text) {
    int fd = open(path, O_WRONLY);
    if (fd < 0) {
        printf("poke %s: %s\n", path, errname(errno));
        return;
    }
    ssize_t n = pwrite(fd, text, strlen(text), 0);
    if (n < 0) {
        printf("poke %s: %s\n", path, errname(errno));
    } else {
        printf("poke %s: ok\n", path);
    }
    close(fd);
}

static void trunc_to(const char *path, const char *size) {
    if (truncate(path, atoll(size)) < 0) {
        printf("trunc %s: %s\n", path, errname(errno));
        return;
    }
    printf("trunc %s: ok\n", path);
}

static void write_n(const char *path, const char *count) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        printf("write %s: %s\n", path, errname(errno));
        return;
    }
    memset(buf, 'x', sizeof buf);
    for (long long left = atoll(count); left > 0;) {
        size_t n = left < (long long)sizeof buf ? (size_t)left : sizeof buf;
        ssize_t w = write(fd, buf, n);
        if (w < 0) {
            printf("write %s: %s\n", path, errname(errno));
            close(fd);
            return;
        }
        left -= w;
    }
    close(fd);
    printf("write %s: ok\n", path);
}

static volatile unsigned long spins;

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "sum") == 0 && i + 1 < argc) {
            sum(argv[i + 1]);
            i += 1;
        } else if (strcmp(argv[i], "poke") == 0 && i + 2 < argc) {
            poke(argv[i + 1], argv[i + 2]);
            i += 2;
        } else if (strcmp(argv[i], "trunc") == 0 && i + 2 < argc) {
            trunc_to(argv[i + 1], argv[i + 2]);
            i += 2;
        } else if (strcmp(argv[i], "write") == 0 && i + 2 < argc) {
            write_n(argv[i + 1], argv[i + 2]);
            i += 2;
        } else if (strcmp(argv[i], "spin") == 0) {
            printf("spin\n");
            fflush(stdout);
            for (;;) {
                spins++;
            }
        } else {
            fprintf(stderr, "inputs: bad operation %s\n", argv[i]);
            return 2;
        }
    }
    return 0;
}
