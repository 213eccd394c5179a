from hpoq.main import console_main

console_main()
