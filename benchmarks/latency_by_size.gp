# Latency by payload size, one line per transport, from the blocks report.py
# writes (rows named <transport>/bytes:<N>). Run by benchmarks/run:
#   gnuplot -e "data='latency_by_size.dat'; output='latency_by_size.svg'" latency_by_size.gp
if (!exists("data")) data = 'latency_by_size.dat'
if (!exists("output")) output = 'latency_by_size.svg'

stats data using 1 nooutput
set terminal svg size 900,560 dynamic noenhanced font 'sans,12'
set output output
set title 'Round trip by payload size (median of sampled round trips)'
set xlabel 'payload (bytes): each way for the baselines, one way for isolate_*_by_value'
set ylabel 'round trip (ns)'
set logscale xy
set format x '%.0s%cB'
set grid
set key outside right top
plot for [i=0:STATS_blocks-1] data index i using 1:2 with linespoints title columnheader(1)
