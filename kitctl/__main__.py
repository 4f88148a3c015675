from kitctl.entry import main

main()
