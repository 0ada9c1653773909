from armillary._cli import main

main()
