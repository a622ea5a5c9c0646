/* version: the plateop release, shown by every program's --version. */
#ifndef PLATEOP_VERSION_H
#define PLATEOP_VERSION_H

#define PLATEOP_VERSION "0.1.0"

#endif
