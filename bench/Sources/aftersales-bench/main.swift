// Placeholder: the benchmark driver is being written (see bench/README.md when it lands).
print("aftersales-bench: not written yet")
