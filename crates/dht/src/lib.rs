//! BitTorrent Mainline DHT (BEP 5, BEP 44) adapter.
