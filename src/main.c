#include <stdio.h>
int main(void) {
    puts("imgate: not yet");
    return 0;
}
