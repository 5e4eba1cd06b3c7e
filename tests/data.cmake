# Datasets: synthetic tasks checked independently in Python, text/JSONL conversion, malformed files.
rt_script_test(data_cli check_data.py)
