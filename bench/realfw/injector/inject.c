/*
 * efihandoff injector: install configuration tables of chosen bytes in chosen memory types,
 * then chain-load the next stage from the same ESP.
 *
 * Reads \efihandoff\inject.bin from the volume this image was loaded from:
 *   "EHINJ001", u32 count, then per record:
 *     16-byte GUID (EFI byte order), u32 EFI memory type, u32 flags (bit0: install as a
 *     configuration table), u64 length, length bytes.
 * and \efihandoff\next.txt: line 1 the next stage's path on the ESP, line 2 (optional) its
 * command line, passed as UCS-2 load options.
 *
 * For every record it prints one line to ConOut (OVMF mirrors it to the serial port):
 *   efihandoff-inject: <guid> type=N at 0x... len=N            (or "... status=0x..." on failure)
 *
 * Part of efihandoff (MIT). Written against the UEFI spec and gnu-efi's headers.
 */
#include <efi.h>
#include <efilib.h>

#define MAGIC "EHINJ001"
#define FLAG_CONFIG_TABLE 1u
#define MAX_NEXT 4096

static EFI_STATUS read_file(EFI_FILE_HANDLE root, CHAR16 *name, UINT8 **out, UINTN *out_len)
{
    EFI_FILE_HANDLE f;
    EFI_STATUS st = root->Open(root, &f, name, EFI_FILE_MODE_READ, 0);
    if (EFI_ERROR(st))
        return st;
    EFI_FILE_INFO *info = LibFileInfo(f);
    if (!info) {
        f->Close(f);
        return EFI_LOAD_ERROR;
    }
    UINTN len = (UINTN)info->FileSize;
    FreePool(info);
    UINT8 *buf = NULL;
    st = gBS->AllocatePool(EfiLoaderData, len + 1, (void **)&buf);
    if (EFI_ERROR(st)) {
        f->Close(f);
        return st;
    }
    UINTN got = len;
    st = f->Read(f, &got, buf);
    f->Close(f);
    if (EFI_ERROR(st) || got != len) {
        gBS->FreePool(buf);
        return EFI_ERROR(st) ? st : EFI_END_OF_FILE;
    }
    buf[len] = 0;
    *out = buf;
    *out_len = len;
    return EFI_SUCCESS;
}

static UINT32 rd32(const UINT8 *p)
{
    return (UINT32)p[0] | ((UINT32)p[1] << 8) | ((UINT32)p[2] << 16) | ((UINT32)p[3] << 24);
}

static UINT64 rd64(const UINT8 *p)
{
    return (UINT64)rd32(p) | ((UINT64)rd32(p + 4) << 32);
}

/* Lower-case text of an EFI_GUID, the way Linux prints it (%pUl). */
static void guid_text(const EFI_GUID *g, CHAR16 *out)
{
    static const CHAR16 hex[] = L"0123456789abcdef";
    UINT8 b[16];
    b[0] = (UINT8)(g->Data1 >> 24); b[1] = (UINT8)(g->Data1 >> 16);
    b[2] = (UINT8)(g->Data1 >> 8);  b[3] = (UINT8)g->Data1;
    b[4] = (UINT8)(g->Data2 >> 8);  b[5] = (UINT8)g->Data2;
    b[6] = (UINT8)(g->Data3 >> 8);  b[7] = (UINT8)g->Data3;
    for (int i = 0; i < 8; i++)
        b[8 + i] = g->Data4[i];
    int o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = L'-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
    out[o] = 0;
}

static EFI_STATUS inject(EFI_FILE_HANDLE root)
{
    UINT8 *buf;
    UINTN len;
    EFI_STATUS st = read_file(root, L"\\efihandoff\\inject.bin", &buf, &len);
    if (EFI_ERROR(st)) {
        Print(L"efihandoff-inject: no inject.bin (status=0x%lx)\n", (UINT64)st);
        return EFI_SUCCESS;
    }
    if (len < 12 || CompareMem(buf, MAGIC, 8) != 0) {
        Print(L"efihandoff-inject: bad inject.bin\n");
        return EFI_LOAD_ERROR;
    }
    UINT32 count = rd32(buf + 8);
    UINTN off = 12;
    for (UINT32 i = 0; i < count; i++) {
        if (len - off < 32) {
            Print(L"efihandoff-inject: record %d truncated\n", i);
            return EFI_LOAD_ERROR;
        }
        EFI_GUID guid;
        CopyMem(&guid, buf + off, sizeof(guid));
        UINT32 type = rd32(buf + off + 16);
        UINT32 flags = rd32(buf + off + 20);
        UINT64 n = rd64(buf + off + 24);
        off += 32;
        if (n > len - off) {
            Print(L"efihandoff-inject: record %d data truncated\n", i);
            return EFI_LOAD_ERROR;
        }
        CHAR16 gtext[40];
        guid_text(&guid, gtext);
        void *p = NULL;
        st = gBS->AllocatePool((EFI_MEMORY_TYPE)type, n ? (UINTN)n : 1, &p);
        if (EFI_ERROR(st)) {
            Print(L"efihandoff-inject: %s type=%d len=%ld status=0x%lx\n", gtext, type, n,
                  (UINT64)st);
            off += n;
            continue;
        }
        CopyMem(p, buf + off, (UINTN)n);
        off += n;
        if (flags & FLAG_CONFIG_TABLE) {
            st = gBS->InstallConfigurationTable(&guid, p);
            if (EFI_ERROR(st)) {
                Print(L"efihandoff-inject: %s type=%d at 0x%lx len=%ld install-status=0x%lx\n",
                      gtext, type, (UINT64)(UINTN)p, n, (UINT64)st);
                continue;
            }
        }
        Print(L"efihandoff-inject: %s type=%d at 0x%lx len=%ld\n", gtext, type, (UINT64)(UINTN)p,
              n);
    }
    gBS->FreePool(buf);
    return EFI_SUCCESS;
}

/* Split next.txt into the path (line 1) and command line (line 2), both as UCS-2. */
static void parse_next(const UINT8 *buf, UINTN len, CHAR16 *path, CHAR16 *cmd)
{
    UINTN i = 0, o = 0;
    while (i < len && buf[i] != '\n' && buf[i] != '\r' && o < MAX_NEXT - 1)
        path[o++] = buf[i++];
    path[o] = 0;
    while (i < len && (buf[i] == '\n' || buf[i] == '\r'))
        i++;
    o = 0;
    while (i < len && buf[i] != '\n' && buf[i] != '\r' && o < MAX_NEXT - 1)
        cmd[o++] = buf[i++];
    cmd[o] = 0;
}

/* Not EFIAPI: gnu-efi's crt0-efi-x86_64.o receives the MS-ABI arguments and calls efi_main
 * with the System V convention. */
EFI_STATUS efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *systab)
{
    InitializeLib(image, systab);
    EFI_LOADED_IMAGE *li;
    EFI_STATUS st = gBS->HandleProtocol(image, &LoadedImageProtocol, (void **)&li);
    if (EFI_ERROR(st)) {
        Print(L"efihandoff-inject: no LoadedImage (0x%lx)\n", (UINT64)st);
        return st;
    }
    EFI_FILE_IO_INTERFACE *fs;
    st = gBS->HandleProtocol(li->DeviceHandle, &FileSystemProtocol, (void **)&fs);
    if (EFI_ERROR(st)) {
        Print(L"efihandoff-inject: no file system (0x%lx)\n", (UINT64)st);
        return st;
    }
    EFI_FILE_HANDLE root;
    st = fs->OpenVolume(fs, &root);
    if (EFI_ERROR(st)) {
        Print(L"efihandoff-inject: cannot open volume (0x%lx)\n", (UINT64)st);
        return st;
    }
    Print(L"efihandoff-inject: start\n");
    st = inject(root);
    if (EFI_ERROR(st))
        return st;

    UINT8 *nbuf;
    UINTN nlen;
    st = read_file(root, L"\\efihandoff\\next.txt", &nbuf, &nlen);
    if (EFI_ERROR(st)) {
        Print(L"efihandoff-inject: no next.txt (0x%lx)\n", (UINT64)st);
        return st;
    }
    static CHAR16 path[MAX_NEXT], cmd[MAX_NEXT];
    parse_next(nbuf, nlen, path, cmd);
    gBS->FreePool(nbuf);

    EFI_DEVICE_PATH *dp = FileDevicePath(li->DeviceHandle, path);
    EFI_HANDLE child;
    st = gBS->LoadImage(FALSE, image, dp, NULL, 0, &child);
    if (EFI_ERROR(st)) {
        Print(L"efihandoff-inject: LoadImage %s failed (0x%lx)\n", path, (UINT64)st);
        return st;
    }
    if (cmd[0]) {
        EFI_LOADED_IMAGE *cli;
        st = gBS->HandleProtocol(child, &LoadedImageProtocol, (void **)&cli);
        if (!EFI_ERROR(st)) {
            cli->LoadOptions = cmd;
            cli->LoadOptionsSize = (UINT32)((StrLen(cmd) + 1) * sizeof(CHAR16));
        }
    }
    Print(L"efihandoff-inject: starting %s\n", path);
    st = gBS->StartImage(child, NULL, NULL);
    Print(L"efihandoff-inject: %s returned 0x%lx\n", path, (UINT64)st);
    return st;
}
