namespace Diffuse.Imaging;

/// <summary>
/// The files this package writes (PNG grids and figures, GIF animations) are written atomically: through a temporary
/// file <c>.&lt;name&gt;.&lt;pid&gt;.&lt;guid&gt;.tmp</c> renamed over the target. A killed process can leave such a file behind;
/// the first time a process writes into a folder, those of processes no longer running are removed.
/// </summary>
public static class OutputFiles
{
    /// <summary>Reports the path of each stale temporary file removed.</summary>
    public static event Action<string>? StaleFileRemoved
    {
        add => AtomicWrite.StaleFileRemoved += value;
        remove => AtomicWrite.StaleFileRemoved -= value;
    }
}
