/*
 * mandelbrot.c - render the Mandelbrot set serially and with pp_map over
 * rows, check that the two images are identical byte for byte, and write the
 * pool's image as a binary PGM (P5).
 *
 *   mandelbrot [out.pgm] [width height [max_iter]]
 *       defaults: mandelbrot.pgm in the current directory, 1600 x 1200, 500
 *
 * One item is one row (a struct with everything the row needs, so the task
 * depends on no global state); its result is exactly `width` bytes, stored by
 * pp_map straight into the image. Rows through the set's body cost many
 * times more than rows at the edges, so the map uses PP_CHUNK_AUTO, which
 * sizes chunks by measured time. Exit status 0 when the images agree and
 * the file was written, 1 otherwise.
 */
#include <procpool.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct row {
    int32_t y, width, height, max_iter;
    double x0, y0, dx, dy; /* the complex plane: pixel (x, y) is x0 + x*dx, y0 + y*dy */
};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Grey level of an escape count: 0 inside the set, brighter the longer a
 * point takes to escape, on a square-root curve so the detail near the
 * boundary shows. Integer-only, so every process computes the same bytes. */
static unsigned char shade(int it, int max_iter) {
    if (it >= max_iter)
        return 0;
    uint32_t v = (uint32_t)(((uint64_t)it * 65025u) / (uint32_t)max_iter); /* < 255^2 */
    uint32_t r = 0;
    for (int b = 7; b >= 0; b--) {
        uint32_t c = r | (1u << b);
        if (c * c <= v)
            r = c;
    }
    return (unsigned char)(r < 1 ? 1 : r);
}

static void render_row(const struct row *r, unsigned char *out) {
    double ci = r->y0 + r->y * r->dy;
    for (int x = 0; x < r->width; x++) {
        double cr = r->x0 + x * r->dx;
        double zr = 0, zi = 0, zr2 = 0, zi2 = 0;
        int it = 0;
        while (it < r->max_iter && zr2 + zi2 <= 4.0) {
            zi = 2 * zr * zi + ci;
            zr = zr2 - zi2 + cr;
            zr2 = zr * zr;
            zi2 = zi * zi;
            it++;
        }
        out[x] = shade(it, r->max_iter);
    }
}

static int task_row(const void *arg, size_t len, pp_buf_t *out) {
    if (len != sizeof(struct row))
        return pp_buf_fail(out, "bad item size %zu", len);
    struct row r;
    memcpy(&r, arg, sizeof r);
    unsigned char *p = pp_buf_reserve(out, (size_t)r.width);
    if (!p)
        return pp_buf_fail(out, "out of memory for a row of %d bytes", r.width);
    render_row(&r, p);
    return 0;
}

static int write_pgm(const char *path, const unsigned char *img, int w, int h) {
    FILE *fp = fopen(path, "wb");
    if (!fp)
        return -1;
    fprintf(fp, "P5\n%d %d\n255\n", w, h);
    size_t n = fwrite(img, 1, (size_t)w * (size_t)h, fp);
    int rc = (n == (size_t)w * (size_t)h) ? 0 : -1;
    if (fclose(fp) != 0)
        rc = -1;
    return rc;
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "mandelbrot.pgm";
    int w = 1600, h = 1200, max_iter = 500;
    if (argc > 3) {
        w = atoi(argv[2]);
        h = atoi(argv[3]);
    }
    if (argc > 4)
        max_iter = atoi(argv[4]);
    if (w < 1 || h < 1 || w > 100000 || h > 100000 || max_iter < 1) {
        fprintf(stderr, "usage: %s [out.pgm] [width height [max_iter]]\n", argv[0]);
        return 2;
    }

    /* the view: real -2.5 .. 1.0, imaginary centred on 0 with square pixels */
    double span_r = 3.5, dx = span_r / w, dy = dx;
    double x0 = -2.5, y0 = -dy * h / 2.0;

    struct row *rows = malloc(sizeof *rows * (size_t)h);
    unsigned char *serial = malloc((size_t)w * (size_t)h);
    unsigned char *pooled = malloc((size_t)w * (size_t)h);
    if (!rows || !serial || !pooled) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    for (int y = 0; y < h; y++)
        rows[y] = (struct row){y, w, h, max_iter, x0, y0, dx, dy};
    memset(pooled, 0xff, (size_t)w * (size_t)h);

    printf("mandelbrot %d x %d, %d iterations\n", w, h, max_iter);

    double t0 = now();
    for (int y = 0; y < h; y++)
        render_row(&rows[y], serial + (size_t)y * (size_t)w);
    double t_serial = now() - t0;

    pp_pool_t *pool = NULL;
    fflush(stdout);
    int rc = pp_pool_create(&pool, NULL); /* one worker per CPU */
    if (rc != 0) {
        fprintf(stderr, "pp_pool_create: %s\n", pp_strerror(rc));
        return 1;
    }
    t0 = now();
    rc = pp_map(pool, task_row, rows, sizeof *rows, (size_t)h, pooled, (size_t)w, PP_CHUNK_AUTO);
    double t_pool = now() - t0;
    int workers = pp_pool_size(pool);
    pp_pool_close(pool);
    pp_pool_join(pool);
    pp_pool_destroy(pool);
    if (rc != 0) {
        fprintf(stderr, "pp_map: %s (%s)\n", pp_strerror(rc), pp_err_name(rc));
        return 1;
    }

    printf("serial:            %8.3f s\n", t_serial);
    printf("pool (%d workers): %8.3f s\n", workers, t_pool);
    printf("speedup:           %8.2fx\n", t_pool > 0 ? t_serial / t_pool : 0.0);

    int ok = 1;
    if (memcmp(serial, pooled, (size_t)w * (size_t)h) != 0) {
        size_t i = 0;
        while (serial[i] == pooled[i])
            i++;
        printf("MISMATCH: the images differ, first at row %zu column %zu\n", i / (size_t)w,
               i % (size_t)w);
        ok = 0;
    } else {
        printf("images identical (%zu bytes)\n", (size_t)w * (size_t)h);
    }
    if (write_pgm(path, pooled, w, h) != 0) {
        perror(path);
        ok = 0;
    } else {
        printf("wrote %s\n", path);
    }
    free(rows);
    free(serial);
    free(pooled);
    return ok ? 0 : 1;
}
