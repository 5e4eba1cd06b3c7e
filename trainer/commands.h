// One function per `retort <command>`. argv[0] is the command name; the return value is the exit code:
// 0 success, 1 a runtime failure (bad file, I/O, numerical), 2 a usage or config error.
#ifndef RT_COMMANDS_H
#define RT_COMMANDS_H

int rt_cmd_train(int argc, char **argv);
int rt_cmd_generate(int argc, char **argv);
int rt_cmd_eval(int argc, char **argv);
int rt_cmd_inspect(int argc, char **argv);
int rt_cmd_data(int argc, char **argv);
int rt_cmd_synth(int argc, char **argv);
int rt_cmd_distill(int argc, char **argv);
int rt_cmd_finetune(int argc, char **argv);
int rt_cmd_merge(int argc, char **argv);
int rt_cmd_export(int argc, char **argv);
int rt_cmd_tokenize(int argc, char **argv);
int rt_cmd_import(int argc, char **argv);
// retort inspect on a GGUF file (inspect_gguf.c).
int rt_inspect_gguf(const char *path, int json);

// Print "retort <cmd>: error: <msg>" to stderr.
void rt_cli_error(const char *cmd, const char *msg);

#endif
