from distilkit.cli import main

if __name__ == "__main__":
    main()
