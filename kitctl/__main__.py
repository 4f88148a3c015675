from kitctl.cli import main

main()
