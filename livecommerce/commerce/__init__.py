"""Commerce plane: catalog, inventory, flash sales, orders, payments and prize orders."""
