using Diffuse.Checkpoints;
using Diffuse.Configuration;
using Diffuse.Runtime;

namespace Diffuse;

public sealed partial class DiffusionModel
{
    /// <summary>
    /// Checks, before any tensor is allocated, that the weights file's header names exactly the tensors and shapes the
    /// configuration builds (no tensor data is read), and that the network and its loaded weights fit in the memory
    /// available: a damaged or hostile model folder fails in milliseconds with one message.
    /// </summary>
    private static void CheckWeightsBeforeBuilding(DiffusionModelConfig config, string weights)
    {
        var header = Safetensors.ReadHeader(weights);
        var shapes = new Dictionary<string, long[]>(StringComparer.Ordinal);
        foreach (var entry in header.Entries) shapes[entry.Name] = entry.Shape;
        StateDicts.RequireShapes(config.Network.StateShapes(), shapes, weights);
        long parameters = config.Network.ParameterCount();
        // The network's parameters, and the file's tensors while they are copied in (at most 8 bytes each).
        MemoryBudget.Require(parameters * 4 + header.Entries.Sum(e => e.Shape.Aggregate(1L, (a, b) => a * b)) * 8,
            $"the model in '{Path.GetDirectoryName(weights)}' ({parameters:N0} parameters)", "free memory or use a machine with more");
    }
}
