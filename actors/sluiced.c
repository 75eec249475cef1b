/* placeholder until the server entry point lands */
int main(void) { return 0; }
