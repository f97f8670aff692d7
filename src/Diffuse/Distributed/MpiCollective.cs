using System.Runtime.InteropServices;
using System.Text;

namespace Diffuse.Distributed;

/// <summary>
/// <see cref="ICollective"/> over MPI_COMM_WORLD, through a thin binding of our own: the MPI library is opened at run
/// time with <see cref="NativeLibrary"/> and its C functions are called through function pointers, so Diffuse needs no
/// MPI at build time and none at all when it is not launched by <c>mpiexec</c>. Works with MPICH (and the libraries
/// sharing its ABI, libmpi.so.12: Intel MPI, MVAPICH) and with Open MPI (libmpi.so.40). Create it once per process; make
/// calls from one thread at a time (MPI_THREAD_SERIALIZED); dispose it at the end of a successful run (MPI_Finalize);
/// after a failure call <see cref="Abort"/> instead.
/// </summary>
public sealed unsafe class MpiCollective : ICollective
{
    /// <summary>Environment variable naming the MPI shared library to load instead of the default for the launcher.</summary>
    public const string LibraryVariable = "DIFFUSE_MPI_LIBRARY";

    // MPICH's handles are integer constants, fixed by its ABI (libmpi.so.12 / libmpich.so.12). Values as in
    // /usr/include/x86_64-linux-gnu/mpich/mpi.h of MPICH 4.0.2 (Debian 12, libmpich-dev):
    //   typedef int MPI_Comm;     #define MPI_COMM_WORLD ((MPI_Comm)0x44000000)
    //   typedef int MPI_Datatype; #define MPI_FLOAT ((MPI_Datatype)0x4c00040a), MPI_DOUBLE 0x4c00080b, MPI_BYTE 0x4c00010d
    //   typedef int MPI_Op;       #define MPI_SUM (MPI_Op)(0x58000003)
    //   #define MPI_IN_PLACE (void *) -1        #define MPI_THREAD_SERIALIZED 2      #define MPI_SUCCESS 0
    private const int MpichCommWorld = 0x44000000;
    private const int MpichFloat = 0x4c00040a;
    private const int MpichDouble = 0x4c00080b;
    private const int MpichByte = 0x4c00010d;
    private const int MpichSum = 0x58000003;
    // Open MPI's handles are the addresses of exported globals (mpi.h: #define MPI_COMM_WORLD
    // OMPI_PREDEFINED_GLOBAL(MPI_Comm, ompi_mpi_comm_world), likewise ompi_mpi_float, ompi_mpi_double, ompi_mpi_byte,
    // ompi_mpi_op_sum) and MPI_IN_PLACE is (void *) 1. MPI_THREAD_SERIALIZED is 2 in both: calls may come from any
    // thread (a command may run on a thread-pool thread), never from two at once.
    private const int ThreadSerialized = 2;
    private static readonly TimeSpan AbortGrace = TimeSpan.FromSeconds(1);

    private readonly IntPtr _library;
    private readonly bool _openMpi;
    private readonly nint _world, _float, _double, _byte, _sum;
    private readonly void* _inPlace;
    private readonly bool _initialisedHere;
    private bool _finalised;

    private readonly delegate* unmanaged<int*, byte***, int, int*, int> _initThread;
    private readonly delegate* unmanaged<int*, int> _initialized;
    private readonly delegate* unmanaged<int*, int> _finalized;
    private readonly delegate* unmanaged<int> _finalize;
    private readonly delegate* unmanaged<byte*, int*, int> _libraryVersion;
    // Handle parameters are int in MPICH's ABI and pointers in Open MPI's: one function pointer per ABI.
    private readonly delegate* unmanaged<int, int*, int> _commRankI, _commSizeI;
    private readonly delegate* unmanaged<nint, int*, int> _commRankP, _commSizeP;
    private readonly delegate* unmanaged<void*, void*, int, int, int, int, int> _allreduceI;
    private readonly delegate* unmanaged<void*, void*, int, nint, nint, nint, int> _allreduceP;
    private readonly delegate* unmanaged<void*, int, int, int, int, int> _bcastI;
    private readonly delegate* unmanaged<void*, int, nint, int, nint, int> _bcastP;
    private readonly delegate* unmanaged<int, int> _barrierI;
    private readonly delegate* unmanaged<nint, int> _barrierP;
    private readonly delegate* unmanaged<int, int, int> _abortI;
    private readonly delegate* unmanaged<nint, int, int> _abortP;

    /// <summary>
    /// Loads the MPI library (see <see cref="LibraryCandidates"/>), initialises MPI unless the process already did, and
    /// reads this process's rank and the job's size. Throws a <see cref="DiffuseException"/> when no MPI library loads.
    /// </summary>
    public MpiCollective()
    {
        var candidates = LibraryCandidates(Environment.GetEnvironmentVariable);
        KeepDotNetSignalHandlers();
        _library = Load(candidates);
        _openMpi = NativeLibrary.TryGetExport(_library, "ompi_mpi_comm_world", out var ompiWorld);
        _initThread = (delegate* unmanaged<int*, byte***, int, int*, int>)Export("MPI_Init_thread");
        _initialized = (delegate* unmanaged<int*, int>)Export("MPI_Initialized");
        _finalized = (delegate* unmanaged<int*, int>)Export("MPI_Finalized");
        _finalize = (delegate* unmanaged<int>)Export("MPI_Finalize");
        _libraryVersion = NativeLibrary.TryGetExport(_library, "MPI_Get_library_version", out var version) ? (delegate* unmanaged<byte*, int*, int>)version : null;
        if (_openMpi)
        {
            _world = ompiWorld;
            _float = Export("ompi_mpi_float");
            _double = Export("ompi_mpi_double");
            _byte = Export("ompi_mpi_byte");
            _sum = Export("ompi_mpi_op_sum");
            _inPlace = (void*)1;
            _commRankP = (delegate* unmanaged<nint, int*, int>)Export("MPI_Comm_rank");
            _commSizeP = (delegate* unmanaged<nint, int*, int>)Export("MPI_Comm_size");
            _allreduceP = (delegate* unmanaged<void*, void*, int, nint, nint, nint, int>)Export("MPI_Allreduce");
            _bcastP = (delegate* unmanaged<void*, int, nint, int, nint, int>)Export("MPI_Bcast");
            _barrierP = (delegate* unmanaged<nint, int>)Export("MPI_Barrier");
            _abortP = (delegate* unmanaged<nint, int, int>)Export("MPI_Abort");
        }
        else
        {
            (_world, _float, _double, _byte, _sum) = (MpichCommWorld, MpichFloat, MpichDouble, MpichByte, MpichSum);
            _inPlace = (void*)-1;
            _commRankI = (delegate* unmanaged<int, int*, int>)Export("MPI_Comm_rank");
            _commSizeI = (delegate* unmanaged<int, int*, int>)Export("MPI_Comm_size");
            _allreduceI = (delegate* unmanaged<void*, void*, int, int, int, int, int>)Export("MPI_Allreduce");
            _bcastI = (delegate* unmanaged<void*, int, int, int, int, int>)Export("MPI_Bcast");
            _barrierI = (delegate* unmanaged<int, int>)Export("MPI_Barrier");
            _abortI = (delegate* unmanaged<int, int, int>)Export("MPI_Abort");
        }

        int flag;
        Check(_initialized(&flag), "MPI_Initialized");
        if (flag == 0)
        {
            int provided;
            Check(_initThread(null, null, ThreadSerialized, &provided), "MPI_Init_thread");
            _initialisedHere = true;
        }
        int rank, size;
        Check(_openMpi ? _commRankP(_world, &rank) : _commRankI((int)_world, &rank), "MPI_Comm_rank");
        Check(_openMpi ? _commSizeP(_world, &size) : _commSizeI((int)_world, &size), "MPI_Comm_size");
        Rank = rank;
        Size = size;
        LibraryName = ReadLibraryVersion() ?? (_openMpi ? "Open MPI" : "MPICH");
    }

    /// <inheritdoc />
    public int Rank { get; }

    /// <inheritdoc />
    public int Size { get; }

    /// <summary>The MPI library's own name and version line (MPI_Get_library_version), e.g. "MPICH Version: 4.0.2".</summary>
    public string LibraryName { get; }

    /// <summary>True for Open MPI's ABI, false for MPICH's.</summary>
    public bool IsOpenMpi => _openMpi;

    /// <inheritdoc />
    public string Description => $"{LibraryName} ({Size} process{(Size == 1 ? "" : "es")})";

    /// <summary>
    /// The shared libraries to try, in order: <see cref="LibraryVariable"/> when set; otherwise Open MPI's libmpi.so.40
    /// when launched by Open MPI's <c>mpiexec</c>, else MPICH's libmpich.so.12 and libmpi.so.12.
    /// </summary>
    public static IReadOnlyList<string> LibraryCandidates(Func<string, string?> environment)
    {
        if (environment(LibraryVariable) is { Length: > 0 } explicitLibrary) return new[] { explicitLibrary };
        return Collective.IsOpenMpiLaunch(environment)
            ? new[] { "libmpi.so.40", "libmpi.so" }
            : new[] { "libmpich.so.12", "libmpi.so.12", "libmpich.so", "libmpi.so" };
    }

    /// <inheritdoc />
    public void AllReduceSum(Span<float> values)
    {
        if (values.IsEmpty) return;
        fixed (float* p = values)
            Check(_openMpi ? _allreduceP(_inPlace, p, values.Length, _float, _sum, _world)
                           : _allreduceI(_inPlace, p, values.Length, (int)_float, (int)_sum, (int)_world), "MPI_Allreduce");
    }

    /// <inheritdoc />
    public void AllReduceSum(Span<double> values)
    {
        if (values.IsEmpty) return;
        fixed (double* p = values)
            Check(_openMpi ? _allreduceP(_inPlace, p, values.Length, _double, _sum, _world)
                           : _allreduceI(_inPlace, p, values.Length, (int)_double, (int)_sum, (int)_world), "MPI_Allreduce");
    }

    /// <inheritdoc />
    public void Broadcast(Span<byte> data, int root = 0)
    {
        if ((uint)root >= (uint)Size) throw new ArgumentOutOfRangeException(nameof(root), root, $"the job has ranks 0 … {Size - 1}.");
        if (data.IsEmpty) return;
        fixed (byte* p = data)
            Check(_openMpi ? _bcastP(p, data.Length, _byte, root, _world)
                           : _bcastI(p, data.Length, (int)_byte, root, (int)_world), "MPI_Bcast");
    }

    /// <inheritdoc />
    public void Barrier() => Check(_openMpi ? _barrierP(_world) : _barrierI((int)_world), "MPI_Barrier");

    /// <inheritdoc />
    public void Abort(int exitCode)
    {
        try { Console.Out.Flush(); Console.Error.Flush(); } catch (IOException) { }
        // The launcher forwards each process's output through pipes and, on an abort, kills every process at once: on a
        // busy machine it has dropped the failing rank's last lines (its error message). A moment's grace lets it
        // forward them first; the job still ends within seconds.
        Thread.Sleep(AbortGrace);
        if (_openMpi) _abortP(_world, exitCode); else _abortI((int)_world, exitCode);
        Environment.Exit(exitCode);   // MPI_Abort does not return; this is only a safety net
    }

    /// <summary>Finalises MPI (MPI_Finalize) if this object initialised it. Call only after a successful run.</summary>
    public void Dispose()
    {
        if (_finalised || !_initialisedHere) return;
        _finalised = true;
        int flag;
        if (_finalized(&flag) == 0 && flag == 0) Check(_finalize(), "MPI_Finalize");
    }

    /// <summary>
    /// Debian's MPICH runs over UCX, which by default replaces the handlers of SIGSEGV, SIGBUS, SIGFPE and SIGILL when it
    /// is loaded. .NET turns those signals into exceptions (a null reference is a SIGSEGV), so under UCX's handlers any
    /// NullReferenceException killed the process with a UCX backtrace. An empty UCX_ERROR_SIGNALS keeps .NET's handlers;
    /// it must be in the native environment (setenv: <see cref="Environment.SetEnvironmentVariable(string, string)"/>
    /// does not reach it) before the library loads. A value set by the user is kept.
    /// </summary>
    private static void KeepDotNetSignalHandlers()
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS()) return;
        try { _ = SetEnvironment("UCX_ERROR_SIGNALS", "", 0); }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { }
    }

    [DllImport("libc", EntryPoint = "setenv", CharSet = CharSet.Ansi)]
    private static extern int SetEnvironment(string name, string value, int overwrite);

    private static IntPtr Load(IReadOnlyList<string> candidates)
    {
        foreach (var name in candidates)
            if (NativeLibrary.TryLoad(name, out var handle)) return handle;
        throw new DiffuseException(
            $"this process was launched by mpiexec, but no MPI library could be loaded (tried {string.Join(", ", candidates)}). " +
            $"Install MPICH (sudo apt-get install mpich) or set {LibraryVariable} to your MPI's libmpi.so.");
    }

    private IntPtr Export(string name)
    {
        if (NativeLibrary.TryGetExport(_library, name, out var address)) return address;
        throw new DiffuseException($"the MPI library loaded has no function or handle '{name}'; it is not an MPICH- or Open MPI-compatible library. Set {LibraryVariable} to MPICH's libmpich.so.12 or Open MPI's libmpi.so.40.");
    }

    private string? ReadLibraryVersion()
    {
        if (_libraryVersion is null) return null;
        const int capacity = 8192;   // MPI_MAX_LIBRARY_VERSION_STRING: 8192 in MPICH, 256 in Open MPI
        byte* buffer = stackalloc byte[capacity];
        int length;
        if (_libraryVersion(buffer, &length) != 0 || length <= 0) return null;
        string text = Encoding.UTF8.GetString(buffer, Math.Min(length, capacity)).TrimEnd('\0');
        string first = text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault() ?? "";
        // "MPICH Version:\t4.0.2" → "MPICH Version: 4.0.2"; "Open MPI v4.1.4, package: Debian OpenMPI, …" → "Open MPI v4.1.4"
        first = string.Join(' ', first.Split(',')[0].Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));
        return first.Length == 0 ? null : first;
    }

    private void Check(int code, string function)
    {
        if (code != 0)
            throw new DiffuseException($"{function} failed with MPI error code {code} on rank {(Size > 0 ? Rank.ToString(System.Globalization.CultureInfo.InvariantCulture) : "?")}; check that every process runs the same command and that the network between the machines works.");
    }
}
