using System.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Diffuse.Checkpoints;

/// <summary>Moves a module's parameters and buffers (its state dict) to and from plain tensor dictionaries.</summary>
public static class StateDicts
{
    /// <summary>The most problems of one kind listed in an error message; the rest are counted.</summary>
    const int MaxListed = 20;

    /// <summary>
    /// Copies <paramref name="tensors"/> into <paramref name="module"/>'s state dict (parameters and persistent
    /// buffers), in place and without recording gradients. Every key must match, with the same shape; values are
    /// converted to each entry's dtype and device. Everything is checked before anything is copied, so on an error the
    /// module is unchanged.
    /// </summary>
    /// <param name="module">The module to fill.</param>
    /// <param name="tensors">The values by state-dict key, e.g. from <see cref="Safetensors.Load(string)"/>. They are only read: the caller keeps owning them.</param>
    /// <param name="source">Where the values came from (usually the checkpoint's path), named in error messages.</param>
    /// <exception cref="DiffuseException">
    /// Keys are missing or unexpected, or shapes differ; the one message lists every problem.
    /// </exception>
    public static void LoadInto(nn.Module module, IReadOnlyDictionary<string, Tensor> tensors, string source)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(tensors);
        ArgumentNullException.ThrowIfNull(source);

        var state = module.state_dict();
        foreach (var (key, value) in tensors)
            if (value is null || value.IsInvalid)
                throw new ArgumentException($"Tensor '{key}' is null or disposed.", nameof(tensors));
        RequireShapes(state.Select(p => (p.Key, p.Value.shape)), tensors.ToDictionary(p => p.Key, p => p.Value.shape, StringComparer.Ordinal), source);

        // copy_ may return new managed handles to the targets; the scope releases those handles, never the targets.
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        foreach (var (key, target) in state)
            target.copy_(tensors[key]);
    }

    /// <summary>
    /// Returns detached CPU copies of <paramref name="module"/>'s state dict (parameters and persistent buffers): they
    /// share no memory with the module, so later training does not change them.
    /// </summary>
    /// <param name="module">The module to copy.</param>
    /// <returns>
    /// New tensors owned by the caller: like the result of any TorchSharp operation they join the caller's current
    /// dispose scope, if one is open, and otherwise must be disposed by the caller.
    /// </returns>
    public static Dictionary<string, Tensor> Snapshot(nn.Module module)
    {
        ArgumentNullException.ThrowIfNull(module);
        var state = module.state_dict();
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        using var scope = torch.NewDisposeScope();
        foreach (var (key, tensor) in state)
            result.Add(key, tensor.detach().cpu().clone());
        scope.MoveToOuter(result.Values);
        return result;
    }

    /// <summary>
    /// Throws one <see cref="DiffuseException"/> listing every key missing from <paramref name="checkpoint"/>, every key
    /// it has that <paramref name="model"/> lacks, and every shape that differs; used on loaded tensors and, before the
    /// network is built, on a safetensors header against the shapes a configuration would build.
    /// </summary>
    internal static void RequireShapes(IEnumerable<(string Key, long[] Shape)> model, IReadOnlyDictionary<string, long[]> checkpoint, string source)
    {
        var expected = new Dictionary<string, long[]>(StringComparer.Ordinal);
        foreach (var (key, shape) in model) expected[key] = shape;
        var missing = expected.Keys.Where(k => !checkpoint.ContainsKey(k)).ToList();
        var unexpected = checkpoint.Keys.Where(k => !expected.ContainsKey(k)).OrderBy(k => k, StringComparer.Ordinal).ToList();
        var shapes = new List<string>();
        foreach (var (key, target) in expected)
            if (checkpoint.TryGetValue(key, out var shape) && !shape.SequenceEqual(target))
                shapes.Add($"key '{key}': checkpoint has {Format(shape)}, model expects {Format(target)}");
        if (missing.Count + unexpected.Count + shapes.Count == 0) return;
        var message = new StringBuilder($"Checkpoint '{source}' does not fit this model:");
        List(message, "missing from the checkpoint", missing.Select(k => $"key '{k}'").ToList());
        List(message, "in the checkpoint but not in the model", unexpected.Select(k => $"key '{k}'").ToList());
        List(message, "with a different shape", shapes);
        message.Append("\nThis checkpoint was made for a different model configuration; load it with the config.json saved beside it.");
        throw new DiffuseException(message.ToString());
    }

    static string Format(long[] shape) => "[" + string.Join(", ", shape) + "]";

    /// <summary>Appends "N entries {heading}:" and up to <see cref="MaxListed"/> of the problems, one a line, to an error message.</summary>
    internal static void List(StringBuilder message, string heading, List<string> problems)
    {
        if (problems.Count == 0) return;
        message.Append($"\n  {problems.Count} {(problems.Count == 1 ? "entry" : "entries")} {heading}:");
        foreach (var problem in problems.Take(MaxListed)) message.Append($"\n    {problem}");
        if (problems.Count > MaxListed) message.Append($"\n    ... and {problems.Count - MaxListed} more");
    }
}
