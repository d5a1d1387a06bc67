# gnuplot script of bench/peers.sh: best requests/s per endpoint and server,
# grouped bars on a log scale. Called with datafile (a tab-separated table: a
# header row of server names, then one row per endpoint, NaN where a server
# does not serve it), columns (its number of columns) and output (the PNG) set
# with -e.
# SPDX-License-Identifier: MIT
set terminal pngcairo size 1000,560 font "sans,11"
set output output
set datafile separator "\t"
set datafile missing "NaN"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y
set yrange [100:*]
set format y "%.0s%c"
set ylabel "requests/s (best of the rounds, log scale)"
set grid ytics
set key outside right top vertical
set title "libbackend beside its peers (wrk -t2 -c64, 2 CPUs' worth of workers each)"
plot for [c = 2:columns] datafile using c:xtic(1) title columnheader(c)
