# bench/plots.gp - SVG plots of the figures that `make bench` writes as CSV
# (bench_util.h's bench_csv), one plot a CSV, each SVG named as its CSV:
#
#   apply.csv       name,value,unit        bench_core a., c.: round trips (bars)
#   map_chunks.csv  chunksize,items_per_s  bench_map e.: throughput by chunk size
#   speedup.csv     workers,seconds,speedup,ideal
#                                          bench_map f.: CPU-bound map speed-up
#   cli.csv         tool,jobs_per_s        bench_cli: jobs/s (bars)
#   latency.csv     percentile,procpool_us,pthread_us,python_us
#                                          bench_hol b.: latency percentiles
#
# Usage: gnuplot -e "dir='build/bench'" bench/plots.gp
# (dir: where the CSVs are and the SVGs go; build/bench when not given). The
# bench target runs it last, bench_plots (make plots) alone. A CSV that is
# missing or holds no figure skips its plot with a line saying so; the others
# are drawn all the same. A figure that could not be measured is NaN in its
# CSV and left out of the plot.

if (!exists("dir")) dir = "build/bench"

csv(n) = sprintf("%s/%s.csv", dir, n)
svg(n) = sprintf("%s/%s.svg", dir, n)
# rows of a CSV with a figure (a field after the first > 0; NaN is not);
# 0 when the file is missing
rows(n) = int(system(sprintf("awk -F, 'NR > 1 { for (i = 2; i <= NF; i++) " . \
    "if ($i + 0 > 0) { k++; break } } END { print k + 0 }' '%s' 2>/dev/null || echo 0", csv(n))))
skipped(n) = sprintf("plots.gp: %s.svg skipped: %s missing or without figures", n, csv(n))
drawn(n) = sprintf("plots.gp: %s written", svg(n))

set terminal svg size 800,500 dynamic enhanced font 'sans,12' background rgb 'white'
set encoding utf8
set datafile separator ","
set datafile missing "NaN"
set style fill solid 0.85 border -1
set grid ytics lc rgb '#dddddd'
set border 3
set tics nomirror

# colours: procpool blue, Python orange, GNU parallel green, the rest grey
# log-scale tics at 1, 2, 5 of each decade (a plot may span less than one)
tics125 = "(0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, " . \
          "1000, 2000, 5000, 10000, 20000, 50000, 100000)"

# ---- apply round trip vs Python's Pool and the futex ping-pong -----------
if (rows("apply") > 0) {
    set output svg("apply")
    set title "Round trip of a no-op task (bench\\_core; lower is better)"
    set ylabel "µs per round trip (log scale)"
    set logscale y
    eval "set ytics " . tics125
    set yrange [*:*]
    set xrange [-0.6:*]
    set boxwidth 0.6
    set xtics scale 0 font ',11' noenhanced
    unset key
    plot csv("apply") skip 1 using 0:2:(strstrt(strcol(1), "pp_") ? 0x1f77b4 : \
             strstrt(strcol(1), "Python") ? 0xff7f0e : 0x7f7f7f):xtic(1) \
             with boxes lc rgb variable, \
         '' skip 1 using 0:2:(sprintf("%.2f µs", $2)) with labels offset 0,0.8 font ',11' \
             noenhanced
    unset output
    unset logscale y
    print drawn("apply")
} else {
    print skipped("apply")
}

# ---- map throughput vs chunk size ----------------------------------------
if (rows("map_chunks") > 0) {
    reset
    set datafile separator ","
    set datafile missing "NaN"
    set grid xtics ytics lc rgb '#dddddd'
    set border 3
    set tics nomirror
    set output svg("map_chunks")
    set title "pp\\_map(x*3+1) throughput by chunk size, 2 workers (bench\\_map e.)"
    set xlabel "chunksize (items per chunk, log scale)"
    set ylabel "items/s (log scale)"
    set logscale xy
    set format y "%.0s%c"
    set format x "%.0s%c"
    set key top left
    plot csv("map_chunks") skip 1 using 1:2 with linespoints lw 2 pt 7 ps 0.8 lc rgb '#1f77b4' \
         title "procpool pp\\_map"
    unset output
    print drawn("map_chunks")
} else {
    print skipped("map_chunks")
}

# ---- speed-up vs workers for a CPU-bound map ------------------------------
if (rows("speedup") > 0) {
    reset
    set datafile separator ","
    set datafile missing "NaN"
    set grid xtics ytics lc rgb '#dddddd'
    set border 3
    set tics nomirror
    set output svg("speedup")
    set title "Speed-up of a CPU-bound pp\\_map over the serial loop (bench\\_map f.)"
    set xlabel "workers"
    set ylabel "speed-up (serial time / pool time)"
    set xtics 1
    set yrange [0:*]
    set offsets 0, 0, graph 0.1, 0
    set xrange [0.5:*]
    set key bottom right
    plot csv("speedup") skip 1 using 1:4 with lines lw 2 dt 2 lc rgb '#7f7f7f' \
           title "ideal: min(workers, CPUs)", \
         '' skip 1 using 1:3 with linespoints lw 2 pt 7 lc rgb '#1f77b4' title "procpool", \
         '' skip 1 using 1:3:(sprintf("%.2fx", $3)) with labels offset 0,-1.2 font ',10' \
           notitle
    unset output
    print drawn("speedup")
} else {
    print skipped("speedup")
}

# ---- CLI jobs/s vs xargs and GNU parallel ---------------------------------
if (rows("cli") > 0) {
    reset
    set datafile separator ","
    set datafile missing "NaN"
    set grid ytics lc rgb '#dddddd'
    set border 3
    set tics nomirror
    set style fill solid 0.85 border -1
    set output svg("cli")
    set title "Jobs of 'true N', 2 at a time (bench\\_cli; higher is better)"
    set ylabel "jobs/s"
    set yrange [0:*]
    set offsets 0, 0, graph 0.08, 0
    set xrange [-0.6:*]
    set boxwidth 0.6
    set xtics scale 0 font ',11' noenhanced
    unset key
    plot csv("cli") skip 1 using 0:2:(strstrt(strcol(1), "procpool") ? 0x1f77b4 : \
             strstrt(strcol(1), "parallel") ? 0x2ca02c : \
             strstrt(strcol(1), "xargs") ? 0xff7f0e : 0x7f7f7f):xtic(1) \
             with boxes lc rgb variable, \
         '' skip 1 using 0:2:(sprintf("%.0f", $2)) with labels offset 0,0.8 font ',11'
    unset output
    print drawn("cli")
} else {
    print skipped("cli")
}

# ---- latency percentiles --------------------------------------------------
if (rows("latency") > 0) {
    reset
    set datafile separator ","
    set datafile missing "NaN"
    set grid ytics lc rgb '#dddddd'
    set border 3
    set tics nomirror
    set output svg("latency")
    set title "Latency, submit to done, 95% 100 µs and 5% 50 ms tasks, 2 workers (bench\\_hol b.)"
    set ylabel "ms (log scale)"
    set logscale y
    eval "set ytics " . tics125
    set style data histograms
    set style histogram clustered gap 1
    set style fill solid 0.85 border -1
    set xtics scale 0 font ',11' noenhanced
    set key bmargin center horizontal
    set bmargin 6
    # "p99 (100 us tasks)" on two lines
    br(s) = strstrt(s, " (") ? s[1:strstrt(s, " (") - 1] . "\n" . s[strstrt(s, " (") + 1:] : s
    plot csv("latency") skip 1 using ($2 / 1e3):xtic(br(strcol(1))) lc rgb '#1f77b4' \
           title "procpool", \
         '' skip 1 using ($3 / 1e3) lc rgb '#7f7f7f' title "pthread pool", \
         '' skip 1 using ($4 / 1e3) lc rgb '#ff7f0e' title "Python Pool"
    unset output
    print drawn("latency")
} else {
    print skipped("latency")
}
